"""OUT never loses or overwrites a user's data (issue 13): overlap, --force, lock, partial runs."""

from __future__ import annotations

import fcntl
import filecmp
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from pancakes_model.app import segment as seg
from pancakes_model.app import work
from pancakes_model.app.cli import main


def disk(h=40, w=48, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.indices((h, w))
    img = 0.2 + 0.6 * (((yy - h / 2) ** 2 + (xx - w / 2) ** 2) < (min(h, w) / 3) ** 2)
    return (np.clip(img + rng.normal(0, 0.05, (h, w)), 0, 1) * 255).astype(np.uint8)


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    for i in range(5):
        Image.fromarray(disk(seed=i)).save(d / f"img{i}.png")
    return d


def run(capsys, *args):
    code = main(["segment", *map(str, args), "-M", "2", "-K", "3", "--quiet"])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def snapshot(path):
    return {p.relative_to(path): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("where", ["same", "inside", "contains"])
def test_out_overlapping_an_input_is_refused_and_the_inputs_stay(folder, capsys, where):
    before = snapshot(folder.parent)
    out = {"same": folder, "inside": folder / "out", "contains": folder.parent}[where]
    code, err = run(capsys, folder, "--out", out, "--force")
    assert code == 2
    assert "apart from the inputs" in err
    assert snapshot(folder.parent) == before


def test_force_replaces_only_an_earlier_pancakes_output(folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert run(capsys, folder, "--out", out)[0] == 0
    first = json.loads((out / "run.json").read_text())["created"]
    code, err = run(capsys, folder, "--out", out)
    assert code == 2 and "--force" in err
    assert run(capsys, folder, "--out", out, "--force")[0] == 0
    assert json.loads((out / "run.json").read_text())["created"] >= first
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no .NAME.old-PID, no temp dirs
    (out / "notes.txt").write_text("mine")
    code, err = run(capsys, folder, "--out", out, "--force")
    assert code == 2 and "did not write" in err
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "run.json").is_file()


@pytest.mark.parametrize("force", [False, True])
def test_a_folder_of_other_files_is_never_touched(folder, tmp_path, capsys, force):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    code, err = run(capsys, folder, "--out", out, *(["--force"] if force else []))
    assert code == 2 and str(out) in err
    assert (out / "thesis.tex").read_text() == "years of work"
    assert sorted(p.name for p in out.iterdir()) == ["thesis.tex"]  # not even a lock file left there


def test_out_as_a_file_a_symlink_and_dot(folder, tmp_path, capsys, monkeypatch):
    afile = tmp_path / "afile"
    afile.write_text("x")
    code, err = run(capsys, folder, "--out", afile)
    assert code == 2 and "is a file" in err
    assert afile.read_text() == "x"
    target = tmp_path / "target"
    link = tmp_path / "link"
    link.symlink_to(target, target_is_directory=True)
    assert run(capsys, folder, "--out", link)[0] == 0
    assert (target / "run.json").is_file() and link.is_symlink()
    monkeypatch.chdir(folder.parent)
    code, err = run(capsys, folder, "--out", ".", "--force")
    assert code == 2 and "apart from the inputs" in err


def test_unwritable_out_is_found_before_any_work(folder, capsys, monkeypatch):
    monkeypatch.setattr(work, "segment_one", lambda *a, **k: pytest.fail("no input may be segmented"))
    code, err = run(capsys, folder, "--out", "/proc/pancakes-cannot-write-here")
    assert code == 2 and "not writable" in err


def test_a_locked_out_is_refused_at_once(folder, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    fd = os.open(out / ".pancakes.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        code, err = run(capsys, folder, "--out", out)
        assert code == 2 and "another pancakes run" in err
    finally:
        os.close(fd)
    assert run(capsys, folder, "--out", out)[0] == 0  # released with the holder


def test_interrupted_run_never_looks_complete_and_resumes_to_the_same_bytes(folder, tmp_path, capsys, monkeypatch):
    ref = tmp_path / "ref"
    assert run(capsys, folder, "--out", ref)[0] == 0
    real = work.segment_one
    calls = []

    def dies_on_the_third(*args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args, **kwargs)

    out = tmp_path / "out"
    monkeypatch.setattr(work, "segment_one", dies_on_the_third)
    code, err = run(capsys, folder, "--out", out)
    assert code == 130 and "--resume" in err
    assert not (out / "run.json").exists()
    assert len((out / ".partial" / "done.jsonl").read_text().splitlines()) == 2
    monkeypatch.setattr(work, "segment_one", real)
    code, err = run(capsys, folder, "--out", out)
    assert code == 2 and "interrupted run" in err
    code, err = run(capsys, folder, "--out", out, "--resume", "--protocol", "1")
    assert code == 2 and "differs in" in err
    assert run(capsys, folder, "--out", out, "--resume")[0] == 0
    assert not (out / ".partial").exists()
    names = sorted(p.name for p in (ref / "labels").iterdir())
    assert names == sorted(p.name for p in (out / "labels").iterdir())
    for name in names:
        assert filecmp.cmp(ref / "labels" / name, out / "labels" / name, shallow=False), name
    assert (ref / "stats.csv").read_bytes() == (out / "stats.csv").read_bytes()


def test_a_failure_before_any_input_leaves_nothing_behind(folder, tmp_path, capsys):
    (folder / "img2.png").write_bytes(b"broken")
    out = tmp_path / "new"
    code, err = run(capsys, folder / "img2.png", "--out", out)
    assert code == 2 and "cannot read image" in err
    assert not out.exists()


def test_maps_do_not_depend_on_the_batch_or_the_other_inputs(tmp_path):
    """50 inputs with batch 1 and 4, and an input alone that joins their set (``like``; the
    shipped model has a set-context branch, so a set of one is another set): identical maps."""
    d = tmp_path / "many"
    d.mkdir()
    for i in range(50):
        Image.fromarray(disk(24 + i % 7, 30 + i % 5, seed=i)).save(d / f"i{i:02d}.png")
    a, b, alone = tmp_path / "a", tmp_path / "b", tmp_path / "alone"
    seg.run_segment([d], a, M=2, K=3, batch=1, progress=False, log=lambda m: None)
    seg.run_segment([d], b, M=2, K=3, batch=4, progress=False, log=lambda m: None)
    seg.run_segment([d / "i17.png"], alone, M=2, K=3, like=a, progress=False, log=lambda m: None)
    for name in sorted(p.name for p in (a / "labels").glob("*.png")):
        assert (a / "labels" / name).read_bytes() == (b / "labels" / name).read_bytes(), name
    for m in range(2):
        name = f"i17_m{m:02d}.png"
        assert (a / "labels" / name).read_bytes() == (alone / "labels" / name).read_bytes()


@pytest.mark.slow
def test_sigterm_stops_cleanly_like_ctrl_c(tmp_path):
    d = tmp_path / "many"
    d.mkdir()
    for i in range(400):
        Image.fromarray(disk(64, 64, seed=i)).save(d / f"i{i:03d}.png")
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pancakes_model.app.cli", "segment", str(d), "--out", str(out), "--quiet"],
        stderr=subprocess.PIPE,
        text=True,
    )
    for _ in range(600):  # wait until the first inputs are done
        done = out / ".partial" / "done.jsonl"
        if done.is_file() and done.read_text().count("\n") >= 2:
            break
        if proc.poll() is not None:
            break
        import time

        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    assert not (out / "run.json").exists()


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_number_of_inputs(tmp_path):
    """Streaming: peak RSS for 200 inputs is within 100 MB of the peak for 20 (issue 14)."""
    d = tmp_path / "many"
    d.mkdir()
    for i in range(200):
        Image.fromarray(disk(96, 96, seed=i)).save(d / f"i{i:03d}.png")
    script = (
        "import resource, sys\n"
        "from pancakes_model.app.segment import run_segment\n"
        "run_segment(sys.argv[1:-1], sys.argv[-1], M=8, K=20, progress=False, log=lambda m: None)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    files = sorted(str(p) for p in d.iterdir())

    def peak_kb(inputs, out):
        res = subprocess.run(
            [sys.executable, "-c", script, *inputs, str(out)], capture_output=True, text=True, check=True
        )
        return int(res.stdout.strip().splitlines()[-1])

    small = peak_kb(files[:20], tmp_path / "o20")
    large = peak_kb(files, tmp_path / "o200")
    assert (large - small) / 1024 < 100, (small, large)
