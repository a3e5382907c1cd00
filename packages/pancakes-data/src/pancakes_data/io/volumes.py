"""Medical volumes: NIfTI, NRRD, MHA/MHD and DICOM series.

NIfTI is read with nibabel (its sform, NaNs kept), NRRD and MHA with torchio's ``ScalarImage``
(SimpleITK underneath), DICOM series with SimpleITK; each gives the data and a RAS affine, and the
data are reoriented to RAS+ as torchio's ``ToCanonical`` does, so ``--axis`` means the same anatomy
for every file; the spacing comes from the header. The original affine (and, for NIfTI, the header) is kept, so
label maps are written back in the input's own orientation, shape, spacing, origin and direction
(:mod:`pancakes_data.io.writing`). A 2D image stored as a volume (X, Y, 1) stays 2D; a 4D file
with one volume is read as 3D and written back 4D.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from pancakes_data.io.base import MAX_VOXELS, Geometry, ImageData, ReadError, stem_of, suffix_of

__all__ = ["FORMATS", "read_volume", "volume_from_sitk"]

_NAMES = {"nifti": "NIfTI", "nrrd": "NRRD", "mha": "MHA"}
FORMATS = {".nii": "nifti", ".nii.gz": "nifti", ".nrrd": "nrrd", ".nhdr": "nrrd", ".mha": "mha", ".mhd": "mha"}


def _header_shape(path: Path) -> tuple[int, ...]:
    """The image's shape from its header alone (nothing is decoded)."""
    import SimpleITK as sitk

    if FORMATS.get(suffix_of(path)) == "nifti":
        import nibabel as nib

        return tuple(int(n) for n in nib.load(str(path)).shape)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    return tuple(int(n) for n in reader.GetSize())


def _check_size(shape: tuple[int, ...], path: Path) -> None:
    voxels = int(np.prod(shape, dtype=np.int64))
    if voxels > MAX_VOXELS:
        raise ReadError(f"{path}: {'×'.join(map(str, shape))} = {voxels:,} voxels is above the limit of {MAX_VOXELS:,}")


def _from_tensor(data: np.ndarray, affine: np.ndarray, path: Path, fmt: str, extra: dict) -> ImageData:
    """(X, Y, Z) data with a RAS affine → canonical 3D, or 2D when Z == 1. ``extra``: more
    :class:`Geometry` fields (the file's shape, its NIfTI header, …)."""
    import nibabel as nib

    if not np.all(np.isfinite(affine)):
        raise ReadError(f"{path}: the voxel-to-world matrix in its header holds NaN or inf; fix the header first")
    used = affine[:3, :2] if data.shape[2] == 1 else affine[:3, :3]
    if np.linalg.matrix_rank(used, tol=1e-9) < used.shape[1]:
        raise ReadError(f"{path}: the voxel-to-world matrix in its header is singular (a zero voxel size or a "
                        "repeated axis); fix the header first")  # fmt: skip
    if data.shape[2] == 1:
        zooms = np.sqrt((affine[:3, :2] ** 2).sum(axis=0))
        spacing = (float(zooms[0]), float(zooms[1]))
        geometry = Geometry(affine=affine, file_affine=affine, **extra)
        return ImageData(path, stem_of(path), "2d", data[:, :, 0], spacing, "mm", fmt, geometry=geometry)
    ornt = nib.orientations.io_orientation(affine)
    canonical = nib.orientations.apply_orientation(data, ornt)  # what torchio's ToCanonical does
    # the affine of the reoriented voxels: the file's affine after undoing the reorientation
    data_affine = affine @ nib.orientations.inv_ornt_aff(ornt, data.shape)
    geometry = Geometry(affine=data_affine, file_affine=affine, orientation=ornt, **extra)
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    spacing = tuple(float(zooms[int(a)]) for a in ornt[:, 0].argsort())
    return ImageData(
        path,
        stem_of(path),
        "3d",
        np.ascontiguousarray(canonical, dtype=np.float32),
        spacing,
        "mm",
        fmt,
        geometry=geometry,
    )


def volume_from_sitk(image, path: Path, fmt: str, extra: dict | None = None) -> ImageData:
    """A SimpleITK image (e.g. a DICOM series) → :class:`ImageData` via torchio's conversion."""
    from torchio.data.io import sitk_to_nib

    _check_size(tuple(image.GetSize()), path)
    data, affine = sitk_to_nib(image, keepdim=True)  # (C, X, Y, Z), RAS
    if data.shape[0] != 1:
        raise ReadError(f"{path}: {data.shape[0]} components per voxel; only grey volumes are supported")
    return _from_tensor(np.asarray(data[0], dtype=np.float32), affine, path, fmt, extra or {})


def read_volume(path: Path) -> ImageData:
    """Read a NIfTI, NRRD or MHA/MHD file (see module docstring)."""
    fmt = FORMATS.get(suffix_of(path))
    if fmt is None:
        raise ReadError(f"{path}: not a NIfTI, NRRD or MHA file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a broken affine is refused below, by name
            shape = _header_shape(path)
    except Exception as exc:  # nibabel / SimpleITK raise many types for corrupt headers
        raise ReadError(f"cannot read {_NAMES[fmt]} {path}: {exc}") from exc
    extra: dict = {"shape": shape}
    if len(shape) == 4 and shape[3] == 1:
        extra["squeezed_4d"] = True
    elif len(shape) >= 4:
        raise ReadError(f"{path}: 4D {_NAMES[fmt]} {shape} is not supported; split the volumes (e.g. fslsplit)")
    if len(shape) not in (2, 3, 4):
        raise ReadError(f"{path}: expected a 2D or 3D image, got shape {shape}")
    _check_size(shape, path)
    try:
        if fmt == "nifti":
            # nibabel directly (what torchio falls back to): ITK would drop NaNs silently and
            # prefers the qform where nibabel — and most tools — take the sform.
            import nibabel as nib

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                nii = nib.load(str(path))
            data = np.asarray(nii.dataobj, dtype=np.float32).reshape(shape[:3] + (1,) * (3 - min(len(shape), 3)))[None]
            affine = np.asarray(nii.affine, dtype=np.float64)
            extra["nifti_header"] = nii.header.copy()
        else:
            import torchio as tio

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torchio warns before falling back to nibabel
                image = tio.ScalarImage(path)
                data = image.data.numpy()  # (C, X, Y, Z)
                affine = np.asarray(image.affine, dtype=np.float64)
    except Exception as exc:  # torchio / SimpleITK / nibabel raise many types for corrupt files
        raise ReadError(f"cannot read {_NAMES[fmt]} {path}: {exc}") from exc
    if data.shape[0] != 1:
        raise ReadError(f"{path}: {data.shape[0]} channels or volumes; only single grey volumes are supported")
    return _from_tensor(np.asarray(data[0], dtype=np.float32), affine, path, fmt, extra)
