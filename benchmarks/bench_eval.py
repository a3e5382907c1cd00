"""Benchmark pancakes-eval: Set Dice from label maps, S=5, M=16, K=40, 128×128, one core.

Target (issue): ≤ 20 ms. Run with ``nox -s bench`` (or ``python benchmarks/bench_eval.py``).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from _common import ROOT, timeit, write_block

from pancakes_eval import compute_set_dice, compute_set_hd95, compute_set_iou


def main() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the target says
    rng = np.random.default_rng(0)
    rows = []
    for s, m, k in [(5, 16, 40), (3, 8, 20)]:
        pred = rng.integers(0, k, size=(s, m, 128, 128)).astype(np.uint8)
        y = rng.random((s, 128, 128)) < 0.3
        t_dice = timeit(lambda p=pred, t=y, k=k: compute_set_dice(p, t, num_labels=k), repeat=15)
        t_iou = timeit(lambda p=pred, t=y, k=k: compute_set_iou(p, t, num_labels=k), repeat=15)
        rows.append((f"S={s}, M={m}, K={k}", t_dice * 1e3, t_iou * 1e3))
    # Set HD95 loops over candidates present in each image (surface distances are not a bincount).
    pred = rng.integers(0, 20, size=(3, 8, 128, 128))
    pred = np.repeat(np.repeat(pred[..., ::8, ::8], 8, axis=-1), 8, axis=-2)  # blocky maps
    y = np.zeros((3, 128, 128), bool)
    y[:, 30:90, 40:100] = True
    t_hd = timeit(lambda: compute_set_hd95(pred, y, num_labels=20), repeat=3, warmup=1)
    lines = ["| set | Set Dice (ms) | Set IoU (ms) |", "|---|---|---|"]
    lines += [f"| {name}, 128×128 | {d:.1f} | {i:.1f} |" for name, d, i in rows]
    lines.append("")
    lines.append(f"Set HD95, S=3, M=8, K=20 (blocky maps), 128×128: {t_hd * 1e3:.0f} ms.")
    lines.append(
        f"Target: Set Dice for S=5, M=16, K=40 ≤ 20 ms on one core — {'met' if rows[0][1] <= 20 else 'NOT met'}."
    )
    write_block(
        ROOT / "packages" / "pancakes-eval" / "README.md",
        "\n".join(lines),
        name="bench_eval",
        data={
            "set_dice_ms": {r[0]: r[1] for r in rows},
            "set_iou_ms": {r[0]: r[2] for r in rows},
            "set_hd95_ms": t_hd * 1e3,
        },
    )


if __name__ == "__main__":
    main()
