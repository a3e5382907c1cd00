"""torch.distributed on CPU (gloo, 2 processes): the same weights as one process on the same global
batch, and a stopped 2-process run resumes (issue 15); a SIGTERM (a scheduler's preemption) ends a
run with a checkpoint of its last step."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from pancakes_model import Pancakes

pytest.importorskip("pancakes_data")
pytest.importorskip("pancakes_synth")
pytest.importorskip("pancakes_eval")
if not torch.distributed.is_available():  # pragma: no cover
    pytest.skip("torch.distributed is not available", allow_module_level=True)


def write_config(tmp_path, name, **train):
    from pancakes_data.testing import write_store

    store = tmp_path / "store"
    if not store.exists():
        write_store(store, name="toy", n=8, size=64)
        write_store(store, name="toy-dev", n=6, size=64, seed=1)
    dev = tmp_path / "dev.toml"
    dev.write_text(
        f'[dev]\nsets = 2\nstore = "{store}"\n[[dev.families]]\nname = "toy-dev"\nspec = "store:toy-dev"\n',
        encoding="utf-8",
    )
    values = {
        "steps": 4,
        "batch_size": 4,
        "warmup": 1,
        "M": "[2, 3]",
        "K": "[3, 4]",
        "S": "[2, 2]",
        "curriculum": "[[1.0, 32]]",
        "workers": 0,
        "threads": 1,
        "log_every": 1,
        "checkpoint_every": 2,
        "seed": 3,
        "precision": '"fp32"',  # equality with one process to 1e-4 is a float32 property
        **train,
    }
    lines = ["[train]", *(f"{k} = {v}" for k, v in values.items())]
    lines += [
        "[data]",
        f'store = "{store}"',
        f'cache_dir = "{tmp_path / "cache"}"',
        "augment = false",
        "[[data.sources]]",
        'spec = "store:toy"',
        "[val]",
        f'dev = "{dev}"',
        "every = 1000",
        "sets = 1",
        "M = 2",
        "K = 3",
        "S = 2",
        "[out]",
        f'dir = "{tmp_path / name}"',
    ]
    path = tmp_path / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def train(config, *, nproc=1, resume=False):
    import os

    entry = ["-m", "pancakes_model.train", "--config", str(config), "--quiet", *(["--resume"] if resume else [])]
    if nproc > 1:
        entry = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *entry]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, *entry], capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def weights(path):
    return Pancakes.from_pretrained(path).state_dict()


@pytest.mark.slow
def test_two_gloo_processes_give_the_weights_of_one_on_the_same_global_batch(tmp_path):
    train(write_config(tmp_path, "one"))
    train(write_config(tmp_path, "two"), nproc=2)
    a, b = weights(tmp_path / "one" / "last.safetensors"), weights(tmp_path / "two" / "last.safetensors")
    start = Pancakes.from_pretrained(tmp_path / "one" / "last.safetensors")  # moved from the init at all
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5, msg=key)
    assert start.provenance["steps"] == 4
    two = Pancakes.from_pretrained(tmp_path / "two" / "last.safetensors").provenance
    assert two["hardware"].startswith("2 × ")
    rows = [json.loads(x) for x in (tmp_path / "two" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "train"] == [1, 2, 3, 4]  # rank 0 alone logs


@pytest.mark.slow
def test_a_stopped_two_process_run_resumes(tmp_path):
    import shutil

    config = write_config(tmp_path, "run")
    train(config, nproc=2)
    run = tmp_path / "run"
    full = weights(run / "last.safetensors")
    # as if the run had been killed after its step-2 checkpoint
    shutil.rmtree(run / "checkpoints" / "step-00000004")
    (run / "last.safetensors").unlink()
    train(config, nproc=2, resume=True)
    again = weights(run / "last.safetensors")
    for key in full:
        torch.testing.assert_close(again[key], full[key], rtol=1e-4, atol=1e-5, msg=key)
    steps = [r["step"] for r in map(json.loads, (run / "log.jsonl").read_text().splitlines()) if r["kind"] == "train"]
    assert steps == [1, 2, 3, 4]  # rows past the restored step were dropped, then written again


@pytest.mark.slow
def test_sigterm_stops_at_the_end_of_the_step_with_a_checkpoint_and_resumes(tmp_path):
    import os
    import signal
    import time

    config = write_config(tmp_path, "run", steps=100000, checkpoint_every=100000, workers=1)
    run = tmp_path / "run"
    entry = [sys.executable, "-m", "pancakes_model.train", "--config", str(config), "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(entry, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # until a few steps are logged
            log = run / "log.jsonl"
            if log.is_file() and len(log.read_text().splitlines()) >= 3:
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    steps = [r["step"] for r in map(json.loads, (run / "log.jsonl").read_text().splitlines()) if r["kind"] == "train"]
    message, result = out.split("\n", 1)
    stopped = json.loads(result)["step"]
    assert message == f"stopping on SIGTERM at step {stopped} (checkpoint saved)"
    assert stopped == steps[-1] >= 3 and json.loads(result)["signal"] == "SIGTERM"
    # the checkpoint is of the step it stopped at, far before checkpoint_every
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [f"step-{stopped:08d}"]
    res = subprocess.run(
        [*entry, "--resume", "--set", f"train.steps={stopped + 2}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    steps = [r["step"] for r in map(json.loads, (run / "log.jsonl").read_text().splitlines()) if r["kind"] == "train"]
    assert steps == list(range(1, stopped + 3))
