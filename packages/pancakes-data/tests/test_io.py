"""Every input read as a person sees it, and label maps written back in the input's own geometry."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pancakes_data.io import (
    GREY_WEIGHTS,
    ReadError,
    collect_inputs,
    read_image,
    read_input,
    write_labels,
)
from pancakes_data.testing import write_dicom_series

sitk = pytest.importorskip("SimpleITK")
tifffile = pytest.importorskip("tifffile")


def ramp(h=20, w=30):
    return (np.add.outer(np.arange(h) * 5, np.arange(w) * 3) % 256).astype(np.uint8)


def test_palette_png_is_read_as_the_grey_it_shows(tmp_path):
    grey = ramp()
    values = np.unique(grey)
    index = np.searchsorted(values, grey).astype(np.uint8)  # palette indices, unrelated to the greys
    pal = Image.fromarray(index, mode="P")
    lut = np.zeros((256, 3), np.uint8)
    lut[: len(values)] = values[:, None]
    pal.putpalette(lut.ravel().tolist())
    pal.save(tmp_path / "p.png")
    Image.fromarray(grey).save(tmp_path / "g.png")
    a, b = read_image(tmp_path / "p.png"), read_image(tmp_path / "g.png")
    np.testing.assert_allclose(a.data, b.data, atol=0.5)
    assert any("palette" in n for n in a.notes)


def test_rgb_becomes_grey_with_the_shared_weights(tmp_path):
    rgb = np.stack([ramp(), ramp()[::-1], np.full((20, 30), 7, np.uint8)], axis=2)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    item = read_image(tmp_path / "c.png")
    np.testing.assert_allclose(item.data, rgb.astype(np.float32) @ np.asarray(GREY_WEIGHTS, np.float32), atol=1e-3)
    assert any("converted to grey" in n for n in item.notes)


def test_a_decompression_bomb_is_refused_before_decoding(tmp_path):
    Image.new("1", (12000, 9000)).save(tmp_path / "bomb.png")  # 108 M pixels in a few kB
    assert (tmp_path / "bomb.png").stat().st_size < 200_000
    with pytest.raises(ReadError, match=r"108,000,000 pixels is above the limit of 89,478,485.*--max-pixels"):
        read_image(tmp_path / "bomb.png")
    Image.fromarray(ramp()).save(tmp_path / "small.png")
    with pytest.raises(ReadError, match="above the limit of 100"):
        read_image(tmp_path / "small.png", max_pixels=100)
    assert read_image(tmp_path / "small.png", max_pixels=600).data.shape == (20, 30)


def test_multipage_tiff_pages_are_decided_by_their_metadata(tmp_path):
    stack = np.stack([ramp() + i for i in range(4)]).astype(np.uint8)
    tifffile.imwrite(tmp_path / "plain.tif", stack, photometric="minisblack")  # pages, no metadata saying what
    with pytest.raises(ReadError, match="unclear whether they are slices, channels or time points"):
        read_image(tmp_path / "plain.tif")
    tifffile.imwrite(
        tmp_path / "z.tif",
        stack,
        imagej=True,
        resolution=(1 / 0.5, 1 / 0.5),
        metadata={"spacing": 2.0, "unit": "um", "axes": "ZYX"},
    )
    vol = read_image(tmp_path / "z.tif")
    assert vol.kind == "3d" and vol.data.shape == (30, 20, 4)  # (X, Y, Z)
    assert vol.spacing == pytest.approx((0.5, 0.5, 2.0)) and vol.unit == "um"
    np.testing.assert_array_equal(vol.data[:, :, 2], stack[2].T)
    tifffile.imwrite(tmp_path / "t.tif", stack[:, None], imagej=True, metadata={"axes": "TZYX"})
    with pytest.raises(ReadError, match="4 time points"):
        read_image(tmp_path / "t.tif")


def test_ome_tiff_channels_must_be_chosen_and_are_listed(tmp_path):
    two = np.stack([ramp(), 255 - ramp()])
    tifffile.imwrite(
        tmp_path / "c.ome.tif",
        two,
        ome=True,
        metadata={"axes": "CYX", "Channel": {"Name": ["DAPI", "GFP"]}, "PhysicalSizeX": 0.3, "PhysicalSizeY": 0.3},
    )
    with pytest.raises(ReadError, match=r"2 channels \(0: DAPI, 1: GFP\); choose one with --channel"):
        read_image(tmp_path / "c.ome.tif")
    gfp = read_image(tmp_path / "c.ome.tif", channel="GFP")
    np.testing.assert_array_equal(gfp.data, (255 - ramp()).astype(np.float32))
    assert gfp.spacing == pytest.approx((0.3, 0.3)) and gfp.unit == "um"
    assert read_image(tmp_path / "c.ome.tif", channel=0).data[0, 1] == ramp()[0, 1]
    with pytest.raises(ReadError, match="channel 5 does not exist"):
        read_image(tmp_path / "c.ome.tif", channel=5)


def _oblique(size=(12, 10, 7), spacing=(0.8, 1.1, 2.5)):
    img = sitk.GetImageFromArray(np.zeros(size[::-1], np.int16))
    img.SetSpacing(spacing)
    img.SetOrigin((10.0, -20.0, 5.5))
    c, s = np.cos(0.4), np.sin(0.4)
    img.SetDirection((c, 0.0, s, 0.0, 1.0, 0.0, -s, 0.0, c))  # oblique: rotated about y
    img[3, 4, 5] = 1000  # one bright voxel (index x, y, z)
    return img


@pytest.mark.parametrize("suffix", [".nrrd", ".mha", ".nii.gz"])
def test_volumes_round_trip_their_geometry_for_itk_snap_and_slicer(tmp_path, suffix):
    src = tmp_path / f"vol{suffix}"
    sitk.WriteImage(_oblique(), str(src))
    item = read_image(src)
    assert item.kind == "3d" and item.label_suffix == (".nii.gz" if suffix == ".nii.gz" else suffix)
    labels = (item.data > 500).astype(np.uint8)  # the bright voxel, in canonical orientation
    out = write_labels(item, labels, tmp_path / f"lab{item.label_suffix}")
    ref, got = sitk.ReadImage(str(src)), sitk.ReadImage(str(out))
    assert got.GetSize() == ref.GetSize()
    np.testing.assert_allclose(got.GetSpacing(), ref.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(got.GetOrigin(), ref.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(got.GetDirection(), ref.GetDirection(), atol=1e-5)
    arr = sitk.GetArrayFromImage(got)  # (z, y, x)
    assert arr[5, 4, 3] == 1 and arr.sum() == 1


def test_a_4d_nifti_with_one_volume_keeps_its_shape(tmp_path):
    import nibabel as nib

    data = np.zeros((6, 5, 4, 1), np.float32)
    data[2, 2, 2, 0] = 9
    nib.save(nib.Nifti1Image(data, np.diag([2.0, 2.0, 3.0, 1.0])), tmp_path / "v.nii.gz")
    item = read_image(tmp_path / "v.nii.gz")
    assert item.kind == "3d" and item.data.shape == (6, 5, 4)
    out = write_labels(item, (item.data > 1).astype(np.uint8), tmp_path / "l.nii.gz")
    back = nib.load(out)
    assert back.shape == (6, 5, 4, 1)
    assert np.asarray(back.dataobj)[2, 2, 2, 0] == 1


def test_dicom_series_are_found_grouped_named_and_written_as_nifti(tmp_path):
    root = tmp_path / "export"
    write_dicom_series(
        root / "a" / "b", uid="1.2.3.4.1", number=3, description="T1 MPRAGE sag", modality="MR", slices=3
    )
    write_dicom_series(root / "c", uid="1.2.3.4.2", number=5, description="CT/head (bone)", modality="CT", slices=4)
    write_dicom_series(
        root / "c", uid="1.2.3.4.3", number=1, description="scout", modality="CT", slices=1, localizer=True
    )
    notes = []
    refs = collect_inputs([root], log=notes.append)
    assert [r.stem for r in refs] == ["S3_T1_MPRAGE_sag", "S5_CT_head_bone"]
    assert any("localizer" in n for n in notes)
    assert not any("Doe" in n for n in notes)
    ct = read_input(refs[1])
    assert ct.kind == "3d" and ct.modality == "ct" and ct.format == "dicom"
    assert ct.spacing == pytest.approx((0.7, 0.7, 3.0))
    assert not any("Doe" in n for n in ct.notes)
    out = write_labels(ct, np.zeros(ct.data.shape, np.uint8), tmp_path / "S5.nii.gz")
    series = sitk.ReadImage([str(f) for f in refs[1].files])
    back = sitk.ReadImage(str(out))
    np.testing.assert_allclose(back.GetOrigin(), series.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(back.GetSpacing(), series.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(back.GetDirection(), series.GetDirection(), atol=1e-6)
    assert back.GetSize() == series.GetSize()
    only = collect_inputs([root], series=["1.2.3.4.1"])
    assert [r.uid for r in only] == ["1.2.3.4.1"]
    with pytest.raises(ReadError, match=r"--series \['9.9'\] not found"):
        collect_inputs([root], series=["9.9"])


def test_the_geometry_affine_matches_the_reoriented_data(tmp_path):
    import nibabel as nib

    from pancakes_data.io import read_image

    vol = np.random.default_rng(0).random((5, 6, 7)).astype(np.float32)
    # permuted and flipped axes: the reader reorients to RAS+
    aff = np.array([[0, 0, -2, 10], [3, 0, 0, -5], [0, -4, 0, 7], [0, 0, 0, 1]], dtype=float)
    nib.save(nib.Nifti1Image(vol, aff), tmp_path / "v.nii.gz")
    item = read_image(tmp_path / "v.nii.gz")
    g = item.geometry
    assert np.array_equal(g.file_affine, aff) and item.data.shape == (7, 5, 6)
    assert (np.diag(g.affine[:3, :3]) > 0).all() and np.count_nonzero(g.affine[:3, :3]) == 3  # RAS+
    for idx in [(0, 0, 0), (1, 2, 3), (6, 4, 5)]:
        world = g.affine @ [*idx, 1.0]
        in_file = np.linalg.solve(aff, world)[:3]  # the same point, as a voxel of the file
        assert np.allclose(in_file, np.round(in_file))
        assert item.data[idx] == vol[tuple(np.round(in_file).astype(int))]


def test_an_array_input_reads_a_lazy_array_only_when_it_is_read():
    from pancakes_data.io import ArrayInput, ReadError

    class Lazy:  # what a napari layer's slice or a dask array offers
        shape, dtype, reads = (12, 10), np.dtype(np.uint16), 0

        def __array__(self, dtype=None, copy=None):
            Lazy.reads += 1
            return np.arange(120, dtype=np.uint16).reshape(12, 10)

    ref = ArrayInput("lazy", Lazy(), spacing=(0.5, 0.5), unit="um")
    assert ref.kind == "2d" and Lazy.reads == 0  # checked without reading the pixels
    item = ref.read()
    assert Lazy.reads == 1 and item.data.dtype == np.float32 and item.data[11, 9] == 119
    Lazy.shape = (2, 3, 4, 5)
    with pytest.raises(ReadError, match=r"got shape \(2, 3, 4, 5\)"):
        ArrayInput("four", Lazy())
    assert Lazy.reads == 1
