"""Benchmark `pancakes segment` end to end: 256×256 PNGs, M=8, K=20, on this CPU (2 threads).

Target (issue #7): ≥ 20 images/s for read + inference + write (start-up excluded and reported
separately). Runs ``run_segment`` in this process with the process settings the ``pancakes``
command applies (``keep_freed_memory``). Writes the figure into packages/pancakes-model/README.md.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import ROOT, write_block
from PIL import Image

N = 64
RUNS = 5


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-segment-"))
    rng = np.random.default_rng(0)
    src = tmp / "in"
    src.mkdir()
    yy, xx = np.indices((256, 256))
    for i in range(N):
        c = rng.uniform(80, 176, 2)
        img = (
            60
            + 120 * (((yy - c[0]) ** 2 + (xx - c[1]) ** 2) < rng.uniform(30, 70) ** 2)
            + rng.normal(0, 12, (256, 256))
        )
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(src / f"img{i:03d}.png")
    # Start-up of a fresh process (imports + model load) on one image.
    t0 = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pancakes_model.app.cli",
            "segment",
            str(src / "img000.png"),
            "--out",
            str(tmp / "one"),
            "--quiet",
        ],
        check=True,
        capture_output=True,
    )
    one_image_s = time.perf_counter() - t0

    import torch

    torch.set_num_threads(2)
    from pancakes_model.app.runtime import keep_freed_memory
    from pancakes_model.app.segment import run_segment

    keep_freed_memory()  # as the `pancakes` command does at start-up

    quiet = dict(progress=False, log=lambda message: None)
    run_segment([src], tmp / "warm", **quiet)  # warm-up (allocations, model load caches)
    # This machine is noisy: the run with the median end-to-end time of RUNS is reported.
    runs = []
    for r in range(RUNS):
        t = run_segment([src], tmp / f"out{r}", **quiet)["timings_s"]
        runs.append((t["read"] + t["inference"] + t["write"], t))
    runs.sort(key=lambda run: run[0])
    work, t = runs[len(runs) // 2]
    rate = N / work
    lines = [
        f"{N} PNG inputs of 256×256, M = 8, K = 20, one process, 2 threads; median of {RUNS} runs"
        f" ({', '.join(f'{N / w:.1f}' for w, _ in runs)} images/s):",
        "",
        "| stage | seconds |",
        "|---|---|",
        f"| read {N} files | {t['read']:.2f} |",
        f"| inference + mapping back to 256×256 | {t['inference']:.2f} |",
        f"| write {N * 8} label maps, overview, report, stats | {t['write']:.2f} |",
        f"| **end to end (read + infer + write)** | **{work:.2f} → {rate:.1f} images/s** |",
        f"| model load in the run (excluded) | {t['startup_and_model']:.2f} |",
        f"| a fresh `pancakes segment` process on 1 image (imports + model + run) | {one_image_s:.2f} |",
        "",
        f"Target ≥ 20 images/s end to end: {'met' if rate >= 20 else 'NOT met'}.",
    ]
    write_block(
        ROOT / "packages" / "pancakes-model" / "README.md",
        "\n".join(lines),
        name="bench_segment",
        data={
            "images_per_s": rate,
            "runs_images_per_s": [N / w for w, _ in runs],
            "timings": t,
            "fresh_process_one_image_s": one_image_s,
        },
    )


if __name__ == "__main__":
    main()
