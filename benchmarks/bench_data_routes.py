"""The two data routes of training (issue 11): sets generated on the fly by DataLoader workers, or read
from shards written beforehand by `pancakes-synth generate`. Steps/s and the share of wall time the
step waits for data (`data_wait` in the run's log), same model, batch and step count on this CPU.
Writes the table into packages/pancakes-model/README.md.
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

SPEC = "scenes:populations;textures=skimage"
STEPS = 60


def run(tmp: Path, name: str, spec: str, augment_on: str = "workers") -> dict:
    dev = tmp / "dev.toml"
    dev.write_text('[dev]\nsets = 2\n[[dev.families]]\nname = "spots"\nspec = "heldout:spots"\ntarget = "foreground"\n')
    cfg = tmp / f"{name}.toml"
    cfg.write_text(
        f"[train]\nsteps = {STEPS}\nbatch_size = 4\nwarmup = 5\ncurriculum = [[1.0, 128]]\nworkers = 1\nthreads = 1\n"
        f'log_every = 10\ncheckpoint_every = 1000\ninit = "default"\n'
        f'[data]\ncache_dir = "{tmp / "cache"}"\naugment_on = "{augment_on}"\n[[data.sources]]\nspec = "{spec}"\n'
        f'[val]\ndev = "{dev}"\nevery = 100000\nsets = 1\n[out]\ndir = "{tmp / ("run-" + name)}"\n'
    )
    cmd = [sys.executable, "-m", "pancakes_model.train", "--config", str(cfg), "--quiet"]
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if res.returncode != 0:
        sys.exit(f"route {name!r} failed (exit {res.returncode}): {res.stderr.strip()[-2000:]}")
    rows = [json.loads(x) for x in (tmp / ("run-" + name) / "log.jsonl").read_text().splitlines()]
    later = [r for r in rows if r["kind"] == "train" and r["step"] >= 20]
    return {
        "steps_per_s": float(np.median([r["it_per_s"] for r in later])),
        "data_wait": float(np.median([r["data_wait"] for r in later])),
    }


def main() -> None:
    tmp = scratch("bench-routes-")
    t = time.perf_counter()
    cmd = ["-m", "pancakes_synth.cli", "generate", "--n", "2000", "--set-size", "5", "--source", SPEC]
    subprocess.run(
        [sys.executable, *cmd, "--out", str(tmp / "shards"), "--cache-dir", str(tmp / "cache"), "--quiet"], check=True
    )
    gen_s = time.perf_counter() - t
    fly = run(tmp, "fly", SPEC)
    shards = run(tmp, "shards", f"shards:{tmp / 'shards'}")
    device = run(tmp, "shards-device", f"shards:{tmp / 'shards'}", augment_on="device")
    body = "\n".join(
        [
            f"Training steps at 128², batch 4, one torch thread and one data worker, `{SPEC}`:",
            "",
            "| route | steps/s | share of time waiting for data |",
            "|---|---|---|",
            f"| on the fly (DataLoader worker generates) | {fly['steps_per_s']:.2f} | {fly['data_wait']:.0%} |",
            f"| shards written beforehand (2,000 pairs in {gen_s:.0f} s) | {shards['steps_per_s']:.2f} "
            f"| {shards['data_wait']:.0%} |",
            f'| shards, augmentations applied by the training device (`data.augment_on = "device"`) '
            f"| {device['steps_per_s']:.2f} | {device['data_wait']:.0%} |",
            "",
            "The shipped model's GPU stage consumed ~400 sets/s (12.5 steps/s, batches of 32, 14 CPU workers; see the "
            "model card): there the on-the-fly route needs every CPU core, and shards generated on that machine first "
            "remove the wait, and applying the augmentations on the GPU takes that work off the workers. On this CPU "
            "the device route only moves the augmentation into the training process. Not measured on a GPU in this "
            "session.",
        ]
    )
    write_block(
        ROOT / "packages" / "pancakes-model" / "README.md",
        body,
        name="bench_data_routes",
        data={"fly": fly, "shards": shards, "shards_device": device, "generate_s": gen_s},
    )


if __name__ == "__main__":
    main()
