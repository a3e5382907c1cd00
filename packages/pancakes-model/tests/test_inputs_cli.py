"""Inputs read as a person sees them, every format, and clear errors (issues 13 and 14)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from pancakes_model import Pancakes, segment
from pancakes_model.app.cli import main
from pancakes_model.app.stats import label_stats

sitk = pytest.importorskip("SimpleITK")


def blobs(h=48, w=64):
    yy, xx = np.indices((h, w))
    img = np.full((h, w), 40.0)
    for cy, cx in ((12, 14), (30, 44), (36, 16)):
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < 49] = 200
    return img.astype(np.uint8)


def run(capsys, *args):
    code = main([*map(str, args), "--quiet"])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--device", "cuda"] if not torch.cuda.is_available() else ["--device", "bogus"], "cuda|device"),
        (["--device", "bogus"], "not a device torch knows"),
        (["-K", "70000"], "16-bit label files"),
        (["-M", "300"], "too many protocols"),
        (["--max-pixels", "1"], "--max-pixels must be at least 4"),
    ],
)
def test_bad_flags_are_refused_before_reading_any_input(tmp_path, capsys, flags, message):
    code, err = run(capsys, "segment", tmp_path / "does-not-exist.png", "--out", tmp_path / "o", *flags)
    assert code == 2
    assert "input not found" not in err
    import re

    assert re.search(message, err), err


def test_bad_models_and_bad_like_files_are_refused(tmp_path, capsys):
    Image.fromarray(blobs()).save(tmp_path / "a.png")
    torch.manual_seed(0)
    model = Pancakes()
    path = model.save_pretrained(tmp_path / "ok.safetensors")
    from safetensors.torch import load_file, save_file

    state = load_file(str(path))
    state["featurizer.down.0.0.weight"][0, 0, 0, 0] = float("nan")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata()
    save_file(state, str(tmp_path / "nan.safetensors"), metadata=meta)
    bad_cfg = dict(meta)
    cfg = json.loads(bad_cfg["config"])
    cfg["features"] = -4
    bad_cfg["config"] = json.dumps(cfg)
    save_file(load_file(str(path)), str(tmp_path / "neg.safetensors"), metadata=bad_cfg)
    for name, message in (("nan.safetensors", "NaN or inf"), ("neg.safetensors", "features must be a positive")):
        code, err = run(capsys, "segment", tmp_path / "a.png", "--out", tmp_path / "o", "--model", tmp_path / name)
        assert code == 2 and message in err, err
    (tmp_path / "bad.json").write_text("{not json")
    code, err = run(capsys, "segment", tmp_path / "a.png", "--out", tmp_path / "o", "--like", tmp_path / "bad.json")
    assert code == 2 and "not a pancakes run.json" in err


def test_palette_image_is_segmented_as_the_grey_picture_it_shows(tmp_path, capsys):
    grey = blobs()
    values = np.unique(grey)
    index = (len(values) - 1 - np.searchsorted(values, grey)).astype(np.uint8)  # indices ≠ what is shown
    lut = np.zeros((256, 3), np.uint8)
    lut[: len(values)] = values[::-1, None]
    pal = Image.fromarray(index, mode="P")
    pal.putpalette(lut.ravel().tolist())
    (tmp_path / "p").mkdir()
    (tmp_path / "g").mkdir()
    pal.save(tmp_path / "p" / "x.png")
    Image.fromarray(grey).save(tmp_path / "g" / "x.png")
    for d in ("p", "g"):
        assert run(capsys, "segment", tmp_path / d / "x.png", "--out", tmp_path / f"o{d}", "-M", "2", "-K", "4")[0] == 0
    for m in range(2):
        a = np.asarray(Image.open(tmp_path / "op" / "labels" / f"x_m{m:02d}.png"))
        b = np.asarray(Image.open(tmp_path / "og" / "labels" / f"x_m{m:02d}.png"))
        np.testing.assert_array_equal(a, b)


def test_multichannel_ome_tiff_needs_a_channel_and_gets_um_areas(tmp_path, capsys):
    tifffile = pytest.importorskip("tifffile")
    two = np.stack([blobs(), 255 - blobs()])
    meta = {"axes": "CYX", "Channel": {"Name": ["DAPI", "GFP"]}, "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5}
    tifffile.imwrite(tmp_path / "cells.ome.tif", two, ome=True, metadata=meta)
    code, err = run(capsys, "segment", tmp_path / "cells.ome.tif", "--out", tmp_path / "o", "-M", "1", "-K", "3")
    assert code == 2 and "0: DAPI, 1: GFP" in err
    args = ["segment", tmp_path / "cells.ome.tif", "--out", tmp_path / "o", "-M", "1", "-K", "3", "--channel", "DAPI"]
    assert run(capsys, *args)[0] == 0
    import csv

    with (tmp_path / "o" / "stats.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert sum(float(r["area_um2"]) for r in rows) == pytest.approx(48 * 64 * 0.25)
    back = tifffile.imread(tmp_path / "o" / "labels" / "cells_m00.ome.tif")
    assert back.shape == (48, 64)


def test_dicom_folder_gives_one_input_per_series_with_anonymous_names(tmp_path, capsys):
    from pancakes_data.testing import write_dicom_series

    root = tmp_path / "pacs"
    write_dicom_series(root / "x", uid="1.2.9.1", number=2, description="T2 ax", modality="MR", slices=3)
    write_dicom_series(root / "y", uid="1.2.9.2", number=7, description="CT abdomen", modality="CT", slices=3)
    write_dicom_series(root / "y", uid="1.2.9.3", number=1, description="loc", modality="CT", slices=1, localizer=True)
    code, err = run(capsys, "segment", root, "--out", tmp_path / "o", "-M", "1", "-K", "3")
    assert code == 0, err
    assert "localizer" in err
    names = sorted(p.name for p in (tmp_path / "o" / "labels").glob("*.nii.gz"))
    assert names == ["S2_T2_ax_m00.nii.gz", "S7_CT_abdomen_m00.nii.gz"]
    import re

    for f in ("run.json", "report.html", "stats.csv"):
        text = re.sub(r"base64,[A-Za-z0-9+/=]+", "", (tmp_path / "o" / f).read_text())  # the embedded picture
        assert "Doe" not in text, f
    assert "Doe" not in err


def test_nrrd_input_gives_nrrd_labels_and_counts_objects(tmp_path, capsys):
    vol = np.zeros((12, 16, 20), np.int16)
    vol[2:5, 3:7, 4:9] = 300
    vol[8:11, 9:14, 12:18] = 300
    img = sitk.GetImageFromArray(vol)
    img.SetSpacing((0.5, 0.5, 2.0))
    sitk.WriteImage(img, str(tmp_path / "v.nrrd"))
    assert run(capsys, "segment", tmp_path / "v.nrrd", "--out", tmp_path / "o", "-M", "2", "-K", "3")[0] == 0
    back = sitk.ReadImage(str(tmp_path / "o" / "labels" / "v_m00.nrrd"))
    assert back.GetSize() == img.GetSize() and back.GetSpacing() == pytest.approx(img.GetSpacing())


def test_object_counts_use_full_connectivity():
    lab = np.zeros((1, 20, 20), np.uint8)
    lab[0, 2:5, 2:5] = 1
    lab[0, 10:12, 10:12] = 1
    lab[0, 12:14, 12:14] = 1  # touches the previous one at a corner: the same object
    rows = {r["label"]: r for r in label_stats("x.png", lab, [0], K=2, spacing=(0.5, 0.5), unit="mm")}
    assert rows[1]["objects"] == 2 and rows[0]["objects"] == 1
    assert rows[1]["area_mm2"] == pytest.approx((9 + 4 + 4) * 0.25)


def test_python_api_converts_rgb_refuses_a_bare_array_and_warns_on_nan():
    img = blobs().astype(np.float32)
    rgb = np.repeat(img[..., None], 3, axis=2)
    a, b = segment([img, rgb], M=2, K=3)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"a list of 2D arrays.*\[image\]"):
        segment(img, M=2, K=3)
    nan = img.copy()
    nan[3, 3] = np.nan
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        segment([nan], M=1, K=2)
    assert any("NaN/inf" in str(w.message) for w in caught)


def test_version_and_help_for_every_flag(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert "pancakes-model" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["segment", "--help"])
    text = capsys.readouterr().out
    for flag in ("--out", "-M", "-K", "--model", "--axis", "--device", "--protocol", "--like", "--force", "--resume"):
        assert flag in text
    assert "(default: 8)" in text and "(default: 20)" in text


def test_training_commands_without_the_train_extra_say_which_extra(monkeypatch, capsys):
    import builtins

    real = builtins.__import__

    def no_synth(name, *args, **kwargs):
        if name == "pancakes_synth":
            raise ImportError("no pancakes_synth", name="pancakes_synth")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_synth)
    for command, args in (("train", ["--config", "x.toml"]), ("evaluate", []), ("finetune", FINETUNE_ARGS)):
        with pytest.raises(SystemExit) as info:  # --help answers without the extra (issue 24)
            main([command, "--help"])
        assert info.value.code == 0 and "--" in capsys.readouterr().out
        assert main([command, *args]) == 2
        err = capsys.readouterr().err
        assert "[train]" in err and "pancakes_synth" in err, err


FINETUNE_ARGS = ["--images", "i", "--labels", "l", "--out", "w.safetensors"]
