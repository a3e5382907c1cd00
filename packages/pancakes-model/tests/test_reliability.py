"""No silent damage (issue 24): every hostile case of the review as a test — --force never removes a
user's file, wrong inputs never give quiet wrong answers, and every user error is one line with
exit code 2. Faults are injected (monkeypatched writes), so the tests run everywhere."""

from __future__ import annotations

import errno
import json
import os

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from pancakes_model.app import work
from pancakes_model.app.cli import main


def blob(h=40, w=48, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.indices((h, w))
    img = np.where((yy - h / 2) ** 2 + (xx - w / 3) ** 2 < 90, 200, 40) + rng.normal(0, 5, (h, w))
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture
def inputs(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(blob(seed=i)).save(folder / f"x{i}.png")
    return folder


def run(capsys, *args):
    code = main([*map(str, args), "--quiet"] if args[0] in ("segment", "match") else list(map(str, args)))
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return code, err


def segment(capsys, folder, out, *extra):
    return run(capsys, "segment", folder, "--out", out, "-M", "2", "-K", "4", *extra)


# ---------------------------------------------------------------------------------- data loss
@pytest.mark.parametrize(
    "plant",
    ["labels/mynotes.txt", "masks/user.txt", "labels/mysub/file.txt", "labels/x0_m00.png.bak", "symlink"],
)
def test_force_never_removes_what_pancakes_did_not_write(inputs, tmp_path, capsys, plant):
    out = tmp_path / "P"
    assert segment(capsys, inputs, out)[0] == 0
    if plant == "symlink":
        target = tmp_path / "mine.txt"
        target.write_text("mine")
        os.symlink(target, out / "labels" / "link.png")
        planted = out / "labels" / "link.png"
    else:
        planted = out / plant
        planted.parent.mkdir(parents=True, exist_ok=True)
        planted.write_text("mine")
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    code, err = segment(capsys, inputs, out, "--force")
    assert code == 2 and "was not written by pancakes" in err and err.count("\n") == 1, err
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert planted.is_symlink() or planted.read_text() == "mine"


def test_force_replaces_exactly_the_listed_files_also_for_older_outputs(inputs, tmp_path, capsys):
    out = tmp_path / "P"
    assert segment(capsys, inputs, out)[0] == 0
    run_json = json.loads((out / "run.json").read_text())
    assert "labels/x0_m01.png" in run_json["outputs"] and "run.json" in run_json["outputs"]
    del run_json["outputs"]  # as an output of 9384e47 looks
    (out / "run.json").write_text(json.dumps(run_json))
    assert segment(capsys, inputs, out, "--force")[0] == 0
    assert (out / "labels" / "x1_m00.png").is_file()


def test_a_second_run_is_told_another_run_holds_the_lock(inputs, tmp_path, capsys):
    import fcntl

    out = tmp_path / "P"
    (out / ".partial").mkdir(parents=True)
    fd = os.open(out / ".pancakes.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        code, err = segment(capsys, inputs, out)
    finally:
        os.close(fd)
    assert code == 2 and "another pancakes run" in err


# ------------------------------------------------------------------------ quiet wrong answers
@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"assignment": {"1": [1e20]}}, "a label must be a whole number in 0..3"),
        ({"assignment": {"1": [-3]}}, "a label must be a whole number in 0..3"),
        ({"format": "evil/9"}, "format 'evil/9'"),
        ({"protocol": 7}, "protocol must be a whole number in 0..1"),
        ("list", "a JSON list, not an object"),
    ],
)
def test_a_bad_match_json_is_refused_not_applied(inputs, tmp_path, capsys, edit, message):
    ex_mask = tmp_path / "mask.png"
    Image.fromarray(((blob() > 100) * 255).astype(np.uint8)).save(ex_mask)
    m = tmp_path / "m"
    code, _ = run(capsys, "match", inputs, "--example", inputs / "x0.png", "--mask", ex_mask, "--out", m,
                  "-M", "2", "-K", "4")  # fmt: skip
    assert code == 0
    data = json.loads((m / "match.json").read_text())
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([data] if edit == "list" else {**data, **edit}))
    code, err = segment(capsys, inputs, tmp_path / "s", "--match", bad)
    assert code == 2 and message in err, err
    assert not (tmp_path / "s" / "masks").exists()


def test_fractional_label_maps_are_refused_naming_the_file(tmp_path):
    from pancakes_data.io import ReadError, read_labels

    nib.save(nib.Nifti1Image(np.full((4, 4, 3), 0.5, np.float32), np.eye(4)), tmp_path / "p.nii.gz")
    with pytest.raises(ReadError, match=r"p\.nii\.gz: labels must be integers, found value 0\.5"):
        read_labels(tmp_path / "p.nii.gz")


def test_a_dicom_series_with_a_missing_slice_is_refused(tmp_path, capsys):
    pytest.importorskip("SimpleITK")
    from pancakes_data.testing import write_dicom_series

    write_dicom_series(tmp_path / "dcm", uid="1.2.3.4", number=3, description="T1", modality="MR", slices=5)
    files = sorted((tmp_path / "dcm").iterdir())
    files[2].unlink()  # the slice in the middle has no pixel data any more
    code, err = segment(capsys, tmp_path / "dcm", tmp_path / "o")
    assert code == 2 and "not evenly spaced" in err


def test_a_2d_nrrd_gives_a_2d_nrrd(tmp_path, capsys):
    sitk = pytest.importorskip("SimpleITK")
    img = sitk.GetImageFromArray(blob().astype(np.float32))
    img.SetSpacing((0.5, 0.7))
    sitk.WriteImage(img, str(tmp_path / "a.nrrd"))
    assert segment(capsys, tmp_path / "a.nrrd", tmp_path / "o")[0] == 0
    out = sitk.ReadImage(str(tmp_path / "o" / "labels" / "a_m00.nrrd"))
    assert out.GetDimension() == 2 and out.GetSize() == img.GetSize()
    assert out.GetSpacing() == pytest.approx((0.5, 0.7))


def test_max_pixels_zero_and_a_channel_of_a_plain_picture_are_errors(inputs, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["segment", str(inputs), "--out", str(tmp_path / "o"), "--max-pixels", "0"])
    assert info.value.code == 2 and "at least 1, got 0" in capsys.readouterr().err
    code, err = segment(capsys, inputs, tmp_path / "o", "--channel", "99")
    assert code == 2 and "--channel 99" in err and "without channels" in err


# ---------------------------------------------------------------------------------- tracebacks
@pytest.mark.parametrize(("affine", "message"), [(np.zeros((4, 4)), "singular"), (np.full((4, 4), np.nan), "NaN")])
def test_a_nifti_with_a_broken_affine_is_one_line(tmp_path, capsys, affine, message):
    import warnings

    image = nib.Nifti1Image(np.random.default_rng(0).random((8, 8, 6)).astype(np.float32), np.eye(4))
    header = image.header  # the broken matrix goes straight into the sform, as a damaged file has it
    header.set_qform(None, code=0)
    header["sform_code"] = 1
    for i, row in enumerate(("srow_x", "srow_y", "srow_z")):
        header[row] = affine[i]
    with warnings.catch_warnings():  # nibabel itself warns about such a matrix
        warnings.simplefilter("ignore", RuntimeWarning)
        nib.save(nib.Nifti1Image(image.dataobj, None, header), tmp_path / "v.nii.gz")
    code, err = segment(capsys, tmp_path / "v.nii.gz", tmp_path / "o")
    assert code == 2 and message in err


def test_an_unreadable_folder_is_one_line(inputs, tmp_path, capsys, monkeypatch):
    from pathlib import Path

    def denied(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "iterdir", denied)
    code, err = segment(capsys, inputs, tmp_path / "o")
    assert code == 2 and "permission denied" in err


def test_a_full_disk_is_one_line_keeps_the_partial_and_resumes_to_the_same_bytes(inputs, tmp_path, capsys, monkeypatch):
    ref, out = tmp_path / "ref", tmp_path / "o"
    assert segment(capsys, inputs, ref)[0] == 0
    real, calls = work.write_labels, []

    def full_after_one_input(*args, **kwargs):
        calls.append(1)
        if len(calls) > 2:  # the first input's two maps are written, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device", str(args[2]))
        return real(*args, **kwargs)

    monkeypatch.setattr(work, "write_labels", full_after_one_input)
    monkeypatch.setattr(work.torch, "get_num_threads", lambda: 1)  # one input at a time
    code, err = segment(capsys, inputs, out)
    assert code == 2 and "no space left on the device" in err and "--resume" in err and err.count("\n") == 1
    assert (out / ".partial").is_dir() and not (out / "run.json").exists()
    monkeypatch.setattr(work, "write_labels", real)
    assert segment(capsys, inputs, out, "--resume")[0] == 0
    for f in sorted((ref / "labels").iterdir()):
        assert (out / "labels" / f.name).read_bytes() == f.read_bytes()


def test_finetune_into_a_read_only_folder_is_one_line(tmp_path, capsys, monkeypatch):
    from pathlib import Path

    (tmp_path / "img").mkdir()
    (tmp_path / "lab").mkdir()
    real = Path.mkdir

    def read_only(self, *a, **k):
        if "finetune-work" in self.name:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "mkdir", read_only)
    code, err = run(capsys, "finetune", "--images", tmp_path / "img", "--labels", tmp_path / "lab", "--out",
                    tmp_path / "ro" / "w.safetensors")  # fmt: skip
    assert code == 2 and "cannot write in" in err


# ----------------------------------------------------------------------------- unclear messages
def test_a_fifo_a_symlink_loop_and_a_folder_as_model_say_what_they_are(inputs, tmp_path, capsys):
    os.mkfifo(tmp_path / "pipe.png")
    code, err = segment(capsys, tmp_path / "pipe.png", tmp_path / "o")
    assert code == 2 and "FIFO" in err
    os.symlink(tmp_path / "loop.png", tmp_path / "loop.png")
    code, err = segment(capsys, tmp_path / "loop.png", tmp_path / "o")
    assert (code == 2 and "symbolic links" in err.lower()) or "loop" in err.lower()
    code, err = segment(capsys, inputs, tmp_path / "o", "--model", tmp_path)
    assert code == 2 and "is a folder, not a weights file" in err


def test_a_dicom_folder_without_pixel_data_says_so(tmp_path, capsys):
    folder = tmp_path / "dcm"
    folder.mkdir()
    (folder / "IM1").write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 64)  # a preamble and no image
    code, err = segment(capsys, folder, tmp_path / "o")
    assert code == 2 and "no series with pixel data" in err
