"""Scaling out on this machine: DDP training with 1 and 2 gloo processes, and `pancakes segment` on 2
local Dask workers against the single-process path (issue 15).

Training: the same global batch (4 sets, S = 2–5, 64², M and K drawn per step) with 1 process of 2
threads and with 2 processes of 1 thread each; steps/s over steps 10–40 from the run's log.
Segmentation: 64 PNGs of 256², M = 8, K = 20; the Dask figure includes the cluster's start-up,
reported separately, and the overhead per image is (Dask − local) / images. Writes the table into
packages/pancakes-model/README.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _common import ROOT, scratch, write_block

STEPS = 40


def train_config(tmp: Path, name: str, threads: int) -> Path:
    path = tmp / f"{name}.toml"
    dev = tmp / "dev.toml"
    dev.write_text('[dev]\nsets = 2\n[[dev.families]]\nname = "spots"\nspec = "heldout:spots"\ntarget = "foreground"\n')
    path.write_text(
        f"[train]\nsteps = {STEPS}\nbatch_size = 4\nwarmup = 5\ncurriculum = [[1.0, 64]]\nworkers = 1\n"
        f"threads = {threads}\nlog_every = 10\ncheckpoint_every = 1000\n"
        f'[data]\ncache_dir = "{tmp / "cache"}"\n[[data.sources]]\nspec = "procedural"\n'
        f'[val]\ndev = "{dev}"\nevery = 100000\nsets = 1\n[out]\ndir = "{tmp / name}"\n'
    )
    return path


def train_rate(tmp: Path, nproc: int) -> float:
    name = f"train{nproc}"
    cmd = ["-m", "pancakes_model.train", "--config", str(train_config(tmp, name, 2 // nproc)), "--quiet"]
    if nproc > 1:
        cmd = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *cmd]
    subprocess.run([sys.executable, *cmd], check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    rows = [json.loads(x) for x in (tmp / name / "log.jsonl").read_text().splitlines()]
    rates = [r["it_per_s"] for r in rows if r["kind"] == "train" and r["step"] >= 20]
    return float(np.median(rates))


def segment_time(src: Path, out: Path, *extra: str) -> float:
    t = time.perf_counter()
    cmd = [sys.executable, "-m", "pancakes_model.app.cli", "segment", str(src), "--out", str(out), "--quiet", *extra]
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t


def main() -> None:
    from PIL import Image

    tmp = scratch("bench-scale-")
    rows, data = [], {}
    one, two = train_rate(tmp, 1), train_rate(tmp, 2)
    rows += [
        f"| training, 1 process × 2 threads | {one:.2f} steps/s | {4 * one:.1f} sets/s |",
        f"| training, 2 gloo processes × 1 thread | {two:.2f} steps/s | {4 * two:.1f} sets/s ({two / one:.2f}×) |",
    ]
    data.update(train_1proc_steps_per_s=one, train_2proc_steps_per_s=two)
    src = tmp / "pngs"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(64):
        img = rng.normal(100, 12, (256, 256))
        img[60:160, 70:190] += 90
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(src / f"i{i:02d}.png")
    local = segment_time(src, tmp / "local")
    t0 = time.perf_counter()
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster, Client(cluster):
        startup = time.perf_counter() - t0
    dask = segment_time(src, tmp / "dask", "--dask", "local:2")
    rows += [
        f"| segment 64 PNGs of 256², one process (2 threads) | {64 / local:.1f} images/s | {local:.1f} s |",
        f"| segment the same on 2 local Dask workers | {64 / dask:.1f} images/s | {dask:.1f} s, of which cluster "
        f"start-up ≈ {startup:.1f} s; overhead {1000 * (dask - local) / 64:+.0f} ms/image |",
    ]
    data.update(segment_local_s=local, segment_dask_s=dask, dask_startup_s=startup)
    body = "\n".join(
        [
            "Both measured on this machine in one run (processes started fresh, imports included).",
            "",
            "| what | rate | notes |",
            "|---|---|---|",
            *rows,
        ]
    )
    write_block(ROOT / "packages" / "pancakes-model" / "README.md", body, name="bench_scale", data=data)


if __name__ == "__main__":
    main()
