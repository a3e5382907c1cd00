from __future__ import annotations

import csv
import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

from pancakes_model import Pancakes, segment
from pancakes_model.app.cli import main


def disk_image(h=60, w=80, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.indices((h, w))
    img = 0.2 + 0.6 * (((yy - h / 2) ** 2 + (xx - w / 2) ** 2) < (min(h, w) / 3) ** 2)
    return np.clip(img + rng.normal(0, 0.03, (h, w)), 0, 1)


@pytest.fixture
def pngs(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    for i in range(2):
        Image.fromarray((disk_image(seed=i) * 255).astype(np.uint8)).save(d / f"img{i}.png")
    tiff16 = (disk_image(50, 70, seed=3) * 60000).astype(np.uint16)
    Image.fromarray(tiff16).save(d / "deep.tif")
    rgb = np.repeat((disk_image(40, 40, seed=4) * 255).astype(np.uint8)[..., None], 3, axis=2)
    Image.fromarray(rgb).save(d / "colour.png")
    return d


def test_segment_2d_layout(pngs, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["segment", str(pngs), "--out", str(out), "-M", "3", "-K", "5", "--quiet"]) == 0
    assert "converted to grey" in capsys.readouterr().err
    for stem, shape in (("img0", (60, 80)), ("deep", (50, 70)), ("colour", (40, 40))):
        for m in range(3):
            with Image.open(out / "labels" / f"{stem}_m{m:02d}.png") as im:
                arr = np.asarray(im)
            assert arr.shape == shape
            assert arr.dtype == np.uint8
            assert arr.max() < 5
    assert not list((out / "labels").glob("*_m03.png"))
    assert (out / "labels" / "labels.txt").read_text().startswith("####")
    assert (out / "overview.png").is_file()
    assert "<html" in (out / "report.html").read_text()
    run = json.loads((out / "run.json").read_text())
    assert (run["M"], run["K"], run["protocols"]) == (3, 5, [0, 1, 2])
    with (out / "stats.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    # the original columns first (other tools read them), then the ones added later
    assert list(rows[0]) == [
        "input",
        "protocol",
        "label",
        "count",
        "area_mm2",
        "volume_ml",
        "objects",
        "area_um2",
        "volume_um3",
    ]
    img0 = {int(r["label"]): int(r["count"]) for r in rows if r["input"] == "img0.png" and r["protocol"] == "0"}
    with Image.open(out / "labels" / "img0_m00.png") as im:
        counts = np.bincount(np.asarray(im).ravel(), minlength=5)
    assert img0 == {k: int(c) for k, c in enumerate(counts) if c}  # the counts of the written map
    assert not list(tmp_path.glob(".out.tmp-*"))


def test_segment_nifti_3d_keeps_affine_shape_and_orientation(tmp_path):
    vol = np.zeros((20, 24, 16), np.float32)
    box = (slice(3, 11), slice(4, 14), slice(2, 9))  # off centre: a flipped axis would move it
    vol[box] = 1.0
    vol += np.random.default_rng(0).normal(0, 0.05, vol.shape).astype(np.float32)
    aff = np.array([[-1.2, 0, 0, 10], [0, 0, 2.5, -20], [0, 1.0, 0, 5], [0, 0, 0, 1]])  # LSA-ish, anisotropic
    nib.save(nib.Nifti1Image(vol, aff), tmp_path / "vol.nii.gz")
    out = tmp_path / "o"
    assert main(["segment", str(tmp_path / "vol.nii.gz"), "--out", str(out), "-M", "4", "-K", "6", "--quiet"]) == 0
    outside = np.ones(vol.shape, bool)
    outside[box] = False
    separated = []
    for m in range(4):
        lab = nib.load(out / "labels" / f"vol_m{m:02d}.nii.gz")
        assert lab.shape == vol.shape
        np.testing.assert_allclose(lab.affine, aff)
        data = np.asarray(lab.dataobj)
        assert np.issubdtype(data.dtype, np.integer)
        assert data.max() < 6
        # a protocol that gives the box one label and the background another, where the input has them
        major_in, major_out = (np.bincount(data[region].ravel()).argmax() for region in (box, outside))
        separated.append(major_in != major_out and np.mean(data[box] == major_in) > 0.9)
    assert any(separated)
    with (out / "stats.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["volume_ml"] != "" and rows[0]["area_mm2"] == ""
    voxel_ml = 1.2 * 2.5 * 1.0 / 1000
    total = sum(float(r["volume_ml"]) for r in rows if r["protocol"] == "0")
    assert total == pytest.approx(vol.size * voxel_ml, rel=1e-4)


def test_protocol_selection_and_like(pngs, tmp_path):
    first = tmp_path / "first"
    assert main(["segment", str(pngs / "img0.png"), "--out", str(first), "-M", "4", "-K", "6", "--quiet"]) == 0
    second = tmp_path / "second"
    args = [
        "segment",
        str(pngs / "img0.png"),
        str(pngs / "img1.png"),
        "--out",
        str(second),
        "-M",
        "4",
        "-K",
        "6",
        "--protocol",
        "2",
        "--like",
        str(first),
        "--quiet",
    ]
    assert main(args) == 0
    files = sorted(p.name for p in (second / "labels").glob("*.png"))
    assert files == ["img0_m02.png", "img1_m02.png"]
    # the same protocol gives the same labels for the same input
    with Image.open(first / "labels" / "img0_m02.png") as fa, Image.open(second / "labels" / "img0_m02.png") as fb:
        a, b = np.asarray(fa), np.asarray(fb)
    np.testing.assert_array_equal(a, b)
    third = tmp_path / "third"
    assert (
        main(
            [
                "segment",
                str(pngs / "img0.png"),
                "--out",
                str(third),
                "-M",
                "5",
                "-K",
                "6",
                "--protocol",
                "2",
                "--like",
                str(first),
                "--quiet",
            ]
        )
        == 2
    )


def test_python_api_matches_sizes():
    out = segment([disk_image(30, 50), disk_image(64, 64, seed=2)], M=3, K=4)
    assert [o.shape for o in out] == [(3, 30, 50), (3, 64, 64)]
    assert all(o.max() < 4 for o in out)
    with pytest.raises(ValueError, match="empty"):
        segment([], M=2, K=2)
    with pytest.raises(ValueError, match="K must be >= 1, got 0"):
        segment([disk_image()], M=2, K=0)


def test_bad_inputs_exit_2_without_traceback(pngs, tmp_path, capsys):
    def run(*args):
        code = main(["segment", *map(str, args), "--quiet"])
        err = capsys.readouterr().err
        assert "Traceback" not in err
        return code, err

    out = tmp_path / "out"
    assert run(tmp_path / "missing.png", "--out", out) == (
        2,
        f"pancakes: error: input not found: {tmp_path / 'missing.png'}\n",
    )
    (tmp_path / "bad.png").write_bytes(b"not an image")
    assert "cannot read image" in run(tmp_path / "bad.png", "--out", out)[1]
    (tmp_path / "bad.nii.gz").write_bytes(b"corrupt")
    assert "cannot read NIfTI" in run(tmp_path / "bad.nii.gz", "--out", out)[1]
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 3), np.float32), np.eye(4)), tmp_path / "four.nii.gz")
    assert "4D NIfTI" in run(tmp_path / "four.nii.gz", "--out", out)[1]
    nib.save(nib.Nifti1Image(np.ones((8, 8, 8), np.float32), np.eye(4)), tmp_path / "vol.nii.gz")
    assert "mixes 2D images and 3D volumes" in run(tmp_path / "vol.nii.gz", pngs / "img0.png", "--out", out)[1]
    Image.fromarray(np.zeros((1, 30), np.uint8)).save(tmp_path / "thin.png")
    assert "at least 2 per side" in run(tmp_path / "thin.png", "--out", out)[1]
    assert "M must be >= 1, got 0" in run(pngs / "img0.png", "--out", out, "-M", "0")[1]
    assert "K must be >= 1, got 0" in run(pngs / "img0.png", "--out", out, "-K", "0")[1]
    assert "cannot load model" in run(pngs / "img0.png", "--out", out, "--model", tmp_path / "nope.safetensors")[1]
    (tmp_path / "dup").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "dup" / "img0.tif")
    assert "same name stem 'img0'" in run(pngs / "img0.png", tmp_path / "dup", "--out", out)[1]
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert "not empty" in run(pngs / "img0.png", "--out", out)[1]
    assert (out / "keep.txt").read_text() == "mine"


def test_a_closed_output_pipe_ends_quietly_after_the_results_are_written(pngs, tmp_path):
    # `pancakes segment ... | head -c 0`: the reader is gone before the summary is printed
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "pancakes_model", "segment", str(pngs / "img0.png"), "--out", str(out), "-M", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()
    with proc.stderr:
        err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert (out / "labels" / "img0_m01.png").is_file() and (out / "stats.csv").is_file()


def test_constant_and_nan_images_warn_but_output(tmp_path, capsys):
    Image.fromarray(np.full((32, 32), 7, np.uint8)).save(tmp_path / "flat.png")
    arr = np.ones((16, 16), np.float32)
    arr[3, 3] = np.nan
    nib.save(nib.Nifti1Image(arr, np.eye(4)), tmp_path / "nan.nii.gz")
    assert (
        main(["segment", str(tmp_path / "flat.png"), "--out", str(tmp_path / "a"), "-M", "1", "-K", "2", "--quiet"])
        == 0
    )
    assert "constant image" in capsys.readouterr().err
    assert (
        main(["segment", str(tmp_path / "nan.nii.gz"), "--out", str(tmp_path / "b"), "-M", "1", "-K", "2", "--quiet"])
        == 0
    )
    assert "NaN/inf values replaced" in capsys.readouterr().err
    assert (tmp_path / "b" / "labels" / "nan_m00.nii.gz").is_file()


def test_force_replaces_output(pngs, tmp_path):
    out = tmp_path / "o"
    assert main(["segment", str(pngs / "img0.png"), "--out", str(out), "-M", "1", "-K", "2", "--quiet"]) == 0
    assert main(["segment", str(pngs / "img1.png"), "--out", str(out), "-M", "1", "-K", "2", "--quiet", "--force"]) == 0
    assert sorted(p.name for p in (out / "labels").glob("*.png")) == ["img1_m00.png"]


def test_demo(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert "overview" in out and "report" in out
    assert len(list((tmp_path / "demo" / "labels").glob("*.png"))) == 4 * 8


@pytest.mark.browser
def test_report_renders_in_headless_chromium(pngs, tmp_path):
    import os
    import shutil
    import subprocess

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        # CI installs Chromium and sets PANCAKES_REQUIRE_BROWSER=1: there the test must run
        if os.environ.get("PANCAKES_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is not installed, and PANCAKES_REQUIRE_BROWSER=1 requires the browser test")
        pytest.skip("chromium is not installed (apt-get install chromium to run the browser test)")
    out = tmp_path / "o"
    assert main(["segment", str(pngs), "--out", str(out), "-M", "2", "-K", "4", "--quiet"]) == 0
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1200,900",
            (out / "report.html").as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )

    def coloured(path) -> int:  # saturated, bright pixels: label colours, not the grey images or text
        with Image.open(path) as im:
            hsv = np.asarray(im.convert("HSV"))
        return int(((hsv[..., 1] > 80) & (hsv[..., 2] > 80)).sum())

    with Image.open(shot) as im:
        assert np.asarray(im.convert("L"), dtype=np.float32).std() > 10, "the screenshot is blank"
    # The label overlays (tiles of the embedded overview, shown at its size) were drawn, not only the
    # text: as many label-coloured pixels as the overview has (how many depends on the model's maps).
    assert coloured(out / "overview.png") > 500
    assert coloured(shot) >= 0.5 * coloured(out / "overview.png"), "no coloured label maps in the screenshot"


@pytest.mark.parametrize(
    ("shape", "dtype", "labels"),
    [((37, 53), np.uint8, True), ((20, 9), np.uint16, True), ((31, 17, 3), np.uint8, False), ((1, 1), np.uint8, False)],
)
def test_png_encoder_round_trips_through_pillow(tmp_path, shape, dtype, labels):
    import io

    from pancakes_model.render import encode_png, save_png

    rng = np.random.default_rng(0)
    arr = rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)
    arr[: shape[0] // 2] = 3  # runs, as in label maps
    with Image.open(io.BytesIO(encode_png(arr, labels=labels))) as im:
        im.load()
        back = np.asarray(im)
    assert back.shape == arr.shape
    np.testing.assert_array_equal(back.astype(dtype), arr)
    path = save_png(arr, tmp_path / "a.png", labels=labels)
    assert path.read_bytes() == encode_png(arr, labels=labels)


@pytest.mark.parametrize(
    "bad", [np.zeros((4, 4), np.float32), np.zeros((4, 4, 4), np.uint8), np.zeros((0, 3), np.uint8)]
)
def test_png_encoder_rejects_what_it_cannot_write(bad):
    from pancakes_model.render import encode_png

    with pytest.raises(ValueError, match="encode_png"):
        encode_png(bad)


def test_keep_freed_memory_respects_the_users_malloc_settings(monkeypatch):
    import sys

    from pancakes_model.runtime import keep_freed_memory

    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1000")
    assert keep_freed_memory() is False
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    glibc = sys.platform.startswith("linux") and "glibc" in " ".join(__import__("platform").libc_ver())
    assert keep_freed_memory() is glibc


def test_in_memory_images_go_through_the_same_pipeline_as_files(pngs, tmp_path):
    from pancakes_data.io import ArrayInput, read_image
    from pancakes_model.app.segment import run_segment

    arrays = [ArrayInput(p.stem, read_image(p).data) for p in sorted(pngs.glob("*.*"))]
    run_segment(arrays, tmp_path / "mem", M=2, K=4, progress=False, log=lambda m: None)
    run_segment([pngs], tmp_path / "files", M=2, K=4, progress=False, log=lambda m: None)
    for f in sorted((tmp_path / "files" / "labels").glob("*.png")):
        assert (tmp_path / "mem" / "labels" / f.name).read_bytes() == f.read_bytes()
    vol = ArrayInput("vol", np.random.default_rng(0).random((20, 18, 6)).astype(np.float32), spacing=(0.5, 0.5, 2.0))
    meta = run_segment([vol], tmp_path / "v", M=2, K=3, progress=False, log=lambda m: None)
    img = nib.load(tmp_path / "v" / "labels" / "vol_m00.nii.gz")
    assert img.shape == (20, 18, 6) and np.allclose(np.diag(img.affine)[:3], (0.5, 0.5, 2.0))
    assert meta["inputs"][0]["spacing"] == [0.5, 0.5, 2.0]


def test_a_model_with_coarse_protocols_writes_them_and_says_so(pngs, tmp_path):
    torch.manual_seed(0)
    weights = Pancakes(label_caps=(2, 1)).save_pretrained(tmp_path / "capped.safetensors")
    out = tmp_path / "out"
    args = ["segment", str(pngs), "--out", str(out), "-M", "3", "-K", "5", "--model", str(weights), "--quiet"]
    assert main(args) == 0
    assert json.loads((out / "run.json").read_text())["labels_per_protocol"] == [2, 1, 5]
    for stem in ("img0", "deep"):
        for m, cap in ((0, 2), (1, 1)):
            with Image.open(out / "labels" / f"{stem}_m{m:02d}.png") as im:
                assert np.asarray(im).max() < cap
