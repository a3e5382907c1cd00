"""Benchmark `pancakes segment` end to end: 256×256 PNGs, M=8, K=20, on this CPU (2 threads).

Targets: ≥ 20 images/s for read + inference + write (issue 7); since the streaming design
(issues 13/14) within 10 % of commit 8d69f14 (23.6 images/s there), measured as a ratio in the same
run: both versions run alternately in fresh processes of the same kind (a `git archive` of that
commit is made under benchmarks/results/ when git knows it). The ratio is taken with that commit's
weights in both versions (the pipeline's cost; the shipped network is wider since card item 57), and
reported with each version's own weights too. Also: start-up of a fresh process.
Writes the figures into packages/pancakes-model/README.md.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _common import RESULTS, ROOT, scratch, write_block
from PIL import Image

N = 64
RUNS = 5
BASELINE = "8d69f14"
DRIVER = """
import json, os, sys, time
import torch
torch.set_num_threads(2)
sys.path[:0] = sys.argv[3:]
try:
    from pancakes_model.runtime import keep_freed_memory
    from pancakes_model.app.segment import run_segment
except ImportError:  # the layout before pancakes-model had rooms
    from pancakes_model.runtime import keep_freed_memory
    from pancakes_model.segmentation import run_segment
keep_freed_memory()
src, out = sys.argv[1], sys.argv[2]
kw = {"model_path": os.environ["PANCAKES_BENCH_MODEL"]} if os.environ.get("PANCAKES_BENCH_MODEL") else {}
run_segment([src], out + "-warm", progress=False, log=lambda m: None, **kw)
t = time.perf_counter()
run_segment([src], out, progress=False, log=lambda m: None, **kw)
print(json.dumps({"seconds": time.perf_counter() - t}))
"""


def baseline_src() -> list[str] | None:
    """src folders of the baseline commit (exported once with git archive), or None."""
    dest = RESULTS / f"baseline-{BASELINE}"
    if not (dest / "packages").is_dir():
        try:
            dest.mkdir(parents=True, exist_ok=True)
            archive = subprocess.run(
                ["git", "archive", BASELINE, "packages"], cwd=ROOT, check=True, capture_output=True
            )
            subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
        except (OSError, subprocess.CalledProcessError):
            return None
    return [
        str(dest / "packages" / p / "src")
        for p in ("pancakes-model", "pancakes-data", "pancakes-eval", "pancakes-synth")
    ]


def timed(src: Path, out: Path, paths: list[str], model: str | None = None) -> float:
    env = dict(os.environ, PANCAKES_BENCH_MODEL=model) if model else None
    res = subprocess.run(
        [sys.executable, "-c", DRIVER, str(src), str(out), *paths], check=True, capture_output=True, text=True,
        env=env,
    )  # fmt: skip
    return json.loads(res.stdout.strip().splitlines()[-1])["seconds"]


def main() -> None:
    tmp = scratch("bench-segment-")
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
    t0 = time.perf_counter()
    cmd = [
        sys.executable,
        "-m",
        "pancakes_model.app.cli",
        "segment",
        str(src / "img000.png"),
        "--out",
        str(tmp / "one"),
    ]
    subprocess.run([*cmd, "--quiet"], check=True, capture_output=True)
    one_image_s = time.perf_counter() - t0
    old = baseline_src()
    # this pipeline with the baseline's own weights: the pipeline's cost apart from the shipped
    # network's size (the weights shipped since are wider)
    old_weights = str(Path(old[0]) / "pancakes_model" / "weights" / "pancakes-default.safetensors") if old else None
    new_s, old_s, same_s = [], [], []
    for r in range(RUNS):  # alternating, so all arms see the same machine noise
        new_s.append(timed(src, tmp / f"new{r}", []))
        if old:
            old_s.append(timed(src, tmp / f"old{r}", old))
            same_s.append(timed(src, tmp / f"same{r}", [], model=old_weights))
    new_rate = N / statistics.median(new_s)
    lines = [
        f"{N} PNG inputs of 256×256, M = 8, K = 20, one process, 2 threads, read + inference + write "
        f"(model load included, process start-up not); median of {RUNS} runs in fresh processes:",
        "",
        "| version | images/s (runs) |",
        "|---|---|",
        f"| this version | **{new_rate:.1f}** ({', '.join(f'{N / s:.1f}' for s in new_s)}) |",
    ]
    data = {"images_per_s": new_rate, "runs_s": new_s, "fresh_process_one_image_s": one_image_s}
    if old_s:
        old_rate = N / statistics.median(old_s)
        same_rate = N / statistics.median(same_s)
        ratio, pipeline = new_rate / old_rate, same_rate / old_rate
        lines.append(f"| this version with {BASELINE}'s weights | {same_rate:.1f} "
                     f"({', '.join(f'{N / s:.1f}' for s in same_s)}) |")  # fmt: skip
        lines.append(f"| commit {BASELINE}, same run | {old_rate:.1f} ({', '.join(f'{N / s:.1f}' for s in old_s)}) |")
        lines += [
            "",
            f"Ratio this / {BASELINE}, both with {BASELINE}'s weights (the pipeline): {pipeline:.2f} "
            f"(target ≥ 0.90: {'met' if pipeline >= 0.9 else 'NOT met'}); with each version's shipped weights: "
            f"{ratio:.2f}.",
        ]
        data.update(baseline_images_per_s=old_rate, baseline_runs_s=old_s, ratio=ratio, pipeline_ratio=pipeline,
                    same_weights_images_per_s=same_rate, same_weights_runs_s=same_s)  # fmt: skip
    lines += [
        f"Target ≥ 20 images/s end to end: {'met' if new_rate >= 20 else 'NOT met'}.",
        f"A fresh `pancakes segment` process on 1 image (imports + model + run): {one_image_s:.2f} s.",
    ]
    if os.environ.get("PANCAKES_BENCH_NOTE"):
        lines.append(os.environ["PANCAKES_BENCH_NOTE"])
    write_block(ROOT / "packages" / "pancakes-model" / "README.md", "\n".join(lines), name="bench_segment", data=data)


if __name__ == "__main__":
    main()
