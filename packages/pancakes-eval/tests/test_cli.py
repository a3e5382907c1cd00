from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from pancakes_eval.cli import main

Image = pytest.importorskip("PIL.Image")
nib = pytest.importorskip("nibabel")


def write_png(path, arr):
    Image.fromarray(arr.astype(np.uint8)).save(path)


@pytest.fixture
def pred_gt(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "out" / "labels").mkdir(parents=True)
    (tmp_path / "gt").mkdir()
    for i in range(3):
        gt = np.zeros((16, 20), np.uint8)
        gt[4 + i : 10 + i, 5:12] = 1
        write_png(tmp_path / "gt" / f"img{i}.png", gt * 255)
        write_png(tmp_path / "out" / "labels" / f"img{i}_m00.png", rng.integers(0, 4, (16, 20)))
        write_png(tmp_path / "out" / "labels" / f"img{i}_m01.png", gt * 3)  # perfect, label 3
    return tmp_path


def test_cli_scores_a_set_as_json_and_csv(pred_gt, capsys):
    assert main(["score", str(pred_gt / "out"), str(pred_gt / "gt"), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 1
    assert rows[0]["set_dice"] == 1.0
    assert (rows[0]["dice_protocol"], rows[0]["dice_label"]) == (1, 3)
    assert rows[0]["set_hd95"] == 0.0
    out = pred_gt / "s.csv"
    assert main(["score", str(pred_gt / "out"), str(pred_gt / "gt"), "--format", "csv", "-o", str(out)]) == 0
    with out.open(newline="") as fh:
        assert next(csv.DictReader(fh))["n_images"] == "3"


def test_cli_groups_and_table(pred_gt, capsys):
    groups = pred_gt / "groups.csv"
    groups.write_text("stem,set\nimg0,a\nimg1,a\nimg2,b\n")
    assert main(["score", str(pred_gt / "out"), str(pred_gt / "gt"), "--groups", str(groups)]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0].startswith("set")
    assert len(text.strip().splitlines()) == 3


def test_cli_nifti_3d(tmp_path, capsys):
    (tmp_path / "out" / "labels").mkdir(parents=True)
    (tmp_path / "gt").mkdir()
    gt = np.zeros((8, 8, 6), np.uint8)
    gt[2:6, 2:6, 1:4] = 1
    aff = np.diag([0.5, 0.5, 2.0, 1.0])
    nib.save(nib.Nifti1Image(gt, aff), tmp_path / "gt" / "vol.nii.gz")
    nib.save(nib.Nifti1Image(gt * 2, aff), tmp_path / "out" / "labels" / "vol_m00.nii.gz")
    assert main(["score", str(tmp_path / "out"), str(tmp_path / "gt"), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["set_dice"] == 1.0


def test_cli_bad_input_exit_2(pred_gt, tmp_path, capsys):
    assert main(["score", str(tmp_path / "missing"), str(pred_gt / "gt")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (pred_gt / "gt" / "img1.png").unlink()
    assert main(["score", str(pred_gt / "out"), str(pred_gt / "gt")]) == 2
    assert "img1" in capsys.readouterr().err
    (pred_gt / "gt" / "img1.png").write_bytes(b"not a png")
    assert main(["score", str(pred_gt / "out"), str(pred_gt / "gt")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["score", str(pred_gt / "out"), str(pred_gt / "gt"), "--metrics", "foo"]) == 2


def test_any_protocol_numbers_and_huge_label_values_are_scored(pred_gt, capsys):
    labels = pred_gt / "out" / "labels"
    for i in range(3):
        (labels / f"img{i}_m01.png").rename(labels / f"img{i}_m05.png")  # as `--protocol 0 5` writes
        arr = np.asarray(Image.open(labels / f"img{i}_m05.png")).astype(np.int32)
        arr[arr == 3] = 2**31 - 1  # one huge value: must not allocate a 2**31-entry table
        import nibabel as nib

        (labels / f"img{i}_m05.png").unlink()
        nib.save(nib.Nifti1Image(arr.T[:, :, None].copy(), np.eye(4)), labels / f"img{i}_m05.nii.gz")
    # the references as NIfTI too, in the same (x, y, 1) layout
    for i in range(3):
        gt = (np.asarray(Image.open(pred_gt / "gt" / f"img{i}.png")) > 0).astype(np.uint8)
        (pred_gt / "gt" / f"img{i}.png").unlink()
        nib.save(nib.Nifti1Image(gt.T[:, :, None].copy(), np.eye(4)), pred_gt / "gt" / f"img{i}.nii.gz")
        (labels / f"img{i}_m00.png").unlink()
        rnd = np.random.default_rng(i).integers(0, 4, gt.shape).astype(np.uint8)
        nib.save(nib.Nifti1Image(rnd.T[:, :, None].copy(), np.eye(4)), labels / f"img{i}_m00.nii.gz")
    assert main(["score", str(pred_gt / "out"), str(pred_gt / "gt"), "--format", "json", "--metrics", "dice"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert row["set_dice"] == 1.0
    assert (row["dice_protocol"], row["dice_label"]) == (5, 2**31 - 1)


def test_clear_errors_and_warnings(pred_gt, tmp_path, capsys):
    args = ["score", str(pred_gt / "out"), str(pred_gt / "gt")]
    assert main([*args, "--output", str(tmp_path / "missing" / "s.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "groups.csv").write_text("stem,set\nimg0,a\nimg1,a\n")
    assert main([*args, "--groups", str(tmp_path / "groups.csv")]) == 2
    assert "assigns no set to ['img2']" in capsys.readouterr().err
    assert main([*args, "--label", "7"]) == 0
    err = capsys.readouterr().err
    assert "has no label 7" in err and "warning" in err


def test_fractional_reference_masks_and_a_bad_spacing_are_refused(pred_gt, capsys):
    nib.save(nib.Nifti1Image(np.full((16, 20), 0.4, np.float32), np.eye(4)), pred_gt / "gt" / "img0.nii.gz")
    (pred_gt / "gt" / "img0.png").unlink()
    assert main(["score", str(pred_gt / "out"), str(pred_gt / "gt")]) == 2
    err = capsys.readouterr().err
    assert "img0.nii.gz: labels must be integers, found value 0.4" in err and err.count("\n") == 1
    code = main(["score", str(pred_gt / "out"), str(pred_gt / "gt"), "--spacing", "a,b"])
    assert code == 2 and "--spacing must be numbers" in capsys.readouterr().err
