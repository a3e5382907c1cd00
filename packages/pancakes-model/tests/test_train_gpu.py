"""The GPU sitting's CPU rehearsal (issue 23 item 5): the same command as on the lent GPU machine,
``benchmarks/train_gpu.py``, on a tiny config — flat checkpoints appear at the set interval, the
output stays within the machine's file limits, and a run stopped by its time limit resumes."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "benchmarks" / "train_gpu.py"

pytestmark = pytest.mark.skipif(not SCRIPT.is_file(), reason="needs the repository's benchmarks/ folder")


def tiny_config(tmp_path: Path) -> Path:
    from pancakes_data.testing import write_store

    write_store(tmp_path / "store", name="toy", n=8, size=32)
    write_store(tmp_path / "store", name="toy-dev", n=6, size=32, seed=1)
    dev = tmp_path / "dev.toml"
    dev.write_text(
        f'[dev]\nsets = 2\nstore = "{tmp_path / "store"}"\n[[dev.families]]\nname = "toy-dev"\nspec = "store:toy-dev"\n'
    )
    config = tmp_path / "tiny.toml"
    config.write_text(
        "[train]\nsteps = 100000\nbatch_size = 2\nwarmup = 1\nM = [2, 3]\nK = [3, 5]\nS = [2, 2]\n"
        "curriculum = [[1.0, 32]]\nworkers = 0\nthreads = 1\nlog_every = 1\ncheckpoint_every = 100000\n"
        'checkpoint_minutes = 0.02\ncheckpoint_layout = "flat"\nkeep_checkpoints = 1\n'
        f'[data]\nstore = "{tmp_path / "store"}"\ncache_dir = "{tmp_path / "cache"}"\n'
        '[[data.sources]]\nspec = "store:toy"\nweight = 1.0\n'
        f'[val]\ndev = "{dev}"\nevery = 100000\nsets = 2\nM = 2\nK = 3\nS = 2\n'
    )
    return config


def run(config: Path, out: Path, minutes: float) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(SCRIPT), "--config", str(config), "--out", str(out), "--minutes", str(minutes)]
    cmd += ["--margin-seconds", "1"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.slow
def test_the_gpu_sitting_checkpoints_on_time_flat_and_resumes_after_its_time_limit(tmp_path):
    config, out = tiny_config(tmp_path), tmp_path / "out"
    first = run(config, out, minutes=0.3)  # 18 s: set-up (5–12 s, by load), then saves 1.2 s apart
    assert first.returncode == 0, first.stderr[-2000:]
    # one line per log row with what the operator watches
    assert "steps/s" in first.stdout and "data wait" in first.stdout
    files = sorted(p.name for p in out.iterdir())
    # flat, and within the lent machine's limit of 8 files back
    assert all((out / f).is_file() for f in files) and len(files) <= 8
    assert {"checkpoint.safetensors", "last.safetensors", "log.jsonl", "gpu.json"} <= set(files)
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    saves = [r for r in rows if r["kind"] == "checkpoint"]
    # on time (checkpoint_every is far away): one every 1.2 s of training, plus the last — at the end
    # of the first step past each 1.2 s, so a gap is 1.2 s plus up to a step and a save; no gap
    # skips an interval (< 2.4 s). How much of the 18 s is training depends on how long the set-up
    # took on a loaded machine, and a loaded machine stretches the gaps: the gaps are checked, not a count.
    gaps = [b["elapsed"] - a["elapsed"] for a, b in itertools.pairwise(saves[:-1])]
    assert len(saves) >= 3 and all(1.1 <= g < 2.4 for g in gaps), gaps
    stopped = json.loads((out / "gpu.json").read_text())["training"]["step"]
    assert saves[-1]["step"] == stopped

    second = run(config, out, minutes=0.25)
    assert second.returncode == 0, second.stderr[-2000:]
    assert f"resuming from step {stopped}" in second.stdout
    again = json.loads((out / "gpu.json").read_text())["training"]["step"]
    assert again > stopped
    steps = [r["step"] for r in map(json.loads, (out / "log.jsonl").read_text().splitlines()) if r["kind"] == "train"]
    assert steps == sorted(steps) and len(steps) == len(set(steps))  # the log continues, nothing repeated
