from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from pancakes_data.errors import UserError
from pancakes_synth import LabelMapSource, SetGenerator, TotalSegmentatorSource, parse_source
from pancakes_synth import sources as src_mod


def write_nifti(path, data, zooms=(1.5, 1.5, 2.0)):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.diag([*(list(zooms) + [1.0] * 3)[:3], 1.0])), path)


def ball(shape=(24, 24, 20), centre=(12, 12, 10), r=5):
    zz, yy, xx = np.indices(shape)
    return (((zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2) <= r * r).astype(np.uint8)


@pytest.fixture
def totalseg_tree(tmp_path):
    root = tmp_path / "ts"
    for subj in ("s0001", "s0002"):
        seg = root / subj / "segmentations"
        write_nifti(seg / "liver.nii.gz", ball(r=6))
        write_nifti(seg / "vertebrae_L1.nii.gz", ball(centre=(6, 6, 6), r=3))  # v1/v2 style name
        write_nifti(seg / "kidney_cyst_left.nii.gz", np.zeros((24, 24, 20), np.uint8))  # empty: dropped
    return root


def test_totalsegmentator_reader_and_cache(totalseg_tree, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    bank = TotalSegmentatorSource(totalseg_tree, cache_dir=cache).bank(0)
    assert len(bank) == 4
    assert sorted(set(bank.names)) == ["liver", "vertebrae_L1"]
    assert bank.fields.shape[1:] == (32, 32, 32)
    assert (bank.fields > 0).flatten(1).any(1).all()
    # second run: served from the cache, no NIfTI is read
    monkeypatch.setattr(src_mod, "read_label_image", lambda *a: pytest.fail("re-read a cached subject"))
    again = TotalSegmentatorSource(totalseg_tree, cache_dir=cache).bank(0)
    assert again.names == bank.names
    assert not list(totalseg_tree.rglob("*.safetensors")), "the source tree must not be written to"


def test_multilabel_nifti_source_generates_sets(tmp_path):
    lab = ball(r=7) + 2 * ball(centre=(5, 5, 5), r=3)
    write_nifti(tmp_path / "atlases" / "a.nii.gz", lab.astype(np.int16))
    source = LabelMapSource(tmp_path / "atlases", cache_dir=tmp_path / "c")
    bank = source.bank(0)
    assert bank.names == ["a:1", "a:2"]
    s = SetGenerator(source, set_size=2, seed=0).generate(0)
    assert s.images.shape == (2, 128, 128)


def test_parallel_cache_build_gives_the_same_bank(tmp_path, monkeypatch):
    for i in range(3):
        lab = ball(centre=(12, 12, 10 - i), r=7 - i) + 2 * ball(centre=(5 + i, 5, 5), r=3)
        write_nifti(tmp_path / "atlases" / f"a{i}.nii.gz", lab.astype(np.int16))
    serial = LabelMapSource(tmp_path / "atlases", cache_dir=tmp_path / "c1").bank(0)
    monkeypatch.setenv("PANCAKES_SYNTH_WORKERS", "2")
    parallel = LabelMapSource(tmp_path / "atlases", cache_dir=tmp_path / "c2").bank(0)
    assert len(list((tmp_path / "c2").glob("*.safetensors"))) == 3  # one cache entry per file
    assert parallel.names == serial.names
    assert np.array_equal(parallel.fields.numpy(), serial.fields.numpy())
    assert np.array_equal(parallel.extents.numpy(), serial.extents.numpy())


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_a_bad_worker_count_is_one_clear_error(tmp_path, monkeypatch, value):
    write_nifti(tmp_path / "atlases" / "a.nii.gz", ball(centre=(8, 8, 8), r=5).astype(np.int16))
    write_nifti(tmp_path / "atlases" / "b.nii.gz", ball(centre=(9, 8, 8), r=4).astype(np.int16))
    monkeypatch.setenv("PANCAKES_SYNTH_WORKERS", value)
    with pytest.raises(UserError, match=f"PANCAKES_SYNTH_WORKERS must be a whole number >= 1, got '{value}'"):
        LabelMapSource(tmp_path / "atlases", cache_dir=tmp_path / "c").bank(0)


def test_bad_sources(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        LabelMapSource(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no \.nii"):
        LabelMapSource(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="TotalSegmentator layout"):
        TotalSegmentatorSource(tmp_path / "empty")
    write_nifti(tmp_path / "flat" / "x.nii.gz", np.ones((8, 8), np.uint8), zooms=(1, 1))
    with pytest.raises(ValueError, match=r"must be 3D, got shape \(8, 8\)"):
        LabelMapSource(tmp_path / "flat", cache_dir=tmp_path / "c").bank(0)
    write_nifti(tmp_path / "float" / "x.nii.gz", np.full((8, 8, 8), 1.5, np.float32))
    with pytest.raises(ValueError, match=r"labels must be integers, found value 1\.5"):
        LabelMapSource(tmp_path / "float", cache_dir=tmp_path / "c").bank(0)
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "x.nii.gz").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="cannot read NIfTI"):
        LabelMapSource(tmp_path / "corrupt", cache_dir=tmp_path / "c").bank(0)
    with pytest.raises(ValueError, match="unknown source 'dicom:x'"):
        parse_source("dicom:x")
    with pytest.raises(ValueError, match="unknown procedural families"):
        parse_source("procedural:nope")
