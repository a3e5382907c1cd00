"""Writing: one atomic writer, and label maps in the input's own format and geometry.

Every file is written under a temporary name beside its destination and renamed into place, so a
reader never sees half a file. Files get the user's umask (colleagues on a shared server can read
results). Label maps go back to the input's own grid:

* PNG/JPEG/plain TIFF inputs → PNG, the input's width × height;
* NIfTI → NIfTI with the input's header, affine and shape (a 4D file with one volume stays 4D);
* NRRD / MHA → the same format, with the input's spacing, origin and direction (SimpleITK via torchio);
* DICOM series → NIfTI with the series' geometry (DICOM has no simple label-map form);
* OME / ImageJ TIFF → OME-TIFF with the input's physical pixel sizes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pancakes_data.io.base import ImageData
from pancakes_data.io.png import encode_png

__all__ = ["atomic_write", "write_bytes", "write_labels", "write_text"]


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` for a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")  # the suffix stays: writers choose the format by it
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda p: p.write_bytes(data))


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def _to_original(item: ImageData, labels: np.ndarray) -> np.ndarray:
    """Canonical (X, Y, Z) labels → the input's own voxel order (the inverse of the reader's
    reorientation)."""
    import nibabel as nib

    ornt = item.geometry.orientation
    if ornt is None:
        return labels
    canonical = np.array([[0, 1], [1, 1], [2, 1]])
    return nib.orientations.apply_orientation(labels, nib.orientations.ornt_transform(canonical, ornt))


def write_labels(item: ImageData, labels: np.ndarray, path: str | Path, *, atomic: bool = True) -> Path:
    """Write one label map of ``item`` (2D (H, W) or canonical 3D) to ``path`` atomically.

    Args:
        item: the input it belongs to (format and geometry).
        labels: uint8/uint16 labels on the input's grid, in :attr:`ImageData.data`'s orientation.
        path: destination; its suffix should be ``item.label_suffix``.
        atomic: write under a temporary name and rename (off where the caller's own record marks
            files complete, as ``pancakes segment``'s partial folder does).
    """
    if not atomic:
        return _write_labels(item, labels, Path(path), lambda p, write: (write(p), p)[1])
    return _write_labels(item, labels, Path(path), atomic_write)


def _write_labels(item: ImageData, labels: np.ndarray, path: Path, put) -> Path:
    """The writer of :func:`write_labels`; ``put(path, write)`` places the file."""
    dtype = np.uint8 if labels.dtype == np.uint8 else np.uint16
    lab = np.ascontiguousarray(labels.astype(dtype, copy=False))
    fmt = item.format
    if fmt in ("png", "jpeg", "tiff") and item.kind == "2d":
        data = encode_png(lab, labels=True)
        return put(path, lambda p: p.write_bytes(data))
    if fmt == "ome-tiff":
        import tifffile

        if item.kind == "3d":
            arr, axes = np.transpose(lab, (2, 1, 0)), "ZYX"
        else:
            arr, axes = lab, "YX"
        meta: dict = {"axes": axes}
        sp = item.geometry.spacing_yx or (item.spacing[:2] if item.spacing else None)
        if sp:
            meta.update(
                PhysicalSizeY=float(sp[0]), PhysicalSizeX=float(sp[1]), PhysicalSizeYUnit="µm", PhysicalSizeXUnit="µm"
            )
        if item.kind == "3d" and item.geometry.z_spacing:
            meta.update(PhysicalSizeZ=float(item.geometry.z_spacing), PhysicalSizeZUnit="µm")
        return put(path, lambda p: tifffile.imwrite(p, arr, ome=True, metadata=meta, compression="zlib"))
    if fmt in ("nrrd", "mha") and len(item.geometry.shape) == 2:
        return put(path, lambda p: _write_2d_sitk(item.path, lab, p))  # a 2D input stays 2D
    if item.geometry.file_affine is None:
        raise ValueError(f"cannot write {fmt} label maps for {item.path}: its geometry has no affine")
    affine = np.asarray(item.geometry.file_affine, dtype=np.float64)
    lab = _to_original(item, lab) if item.kind == "3d" else lab[:, :, None]
    if fmt in ("nifti", "dicom"):
        import nibabel as nib

        header = item.geometry.nifti_header
        if header is not None:
            header = header.copy()
            header.set_data_dtype(dtype)
            header["scl_slope"], header["scl_inter"] = 1.0, 0.0
            shape = item.geometry.shape or lab.shape
            lab = lab.reshape(shape) if int(np.prod(shape)) == lab.size else lab
        img = nib.Nifti1Image(lab, affine, header)
        if header is None:
            img.set_qform(affine, code=1)
            img.set_sform(affine, code=1)
        return put(path, lambda p: nib.save(img, str(p)))
    if fmt in ("nrrd", "mha"):
        import torch
        from torchio.data.io import write_image

        tensor = torch.from_numpy(lab.astype(np.int32 if dtype == np.uint16 else np.uint8))[None]
        return put(path, lambda p: write_image(tensor, affine, p))
    raise ValueError(f"cannot write label maps for input format {fmt!r}")


def _write_2d_sitk(source: Path, lab: np.ndarray, path: Path) -> None:
    """(X, Y) labels of a 2D NRRD/MHA input, written 2D with the input's spacing, origin and direction."""
    import SimpleITK as sitk

    ref = sitk.ImageFileReader()
    ref.SetFileName(str(source))
    ref.ReadImageInformation()
    img = sitk.GetImageFromArray(np.ascontiguousarray(lab.T))  # SimpleITK arrays are (y, x)
    img.SetSpacing(ref.GetSpacing())
    img.SetOrigin(ref.GetOrigin())
    img.SetDirection(ref.GetDirection())
    sitk.WriteImage(img, str(path), True)
