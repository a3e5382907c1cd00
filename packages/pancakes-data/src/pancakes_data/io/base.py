"""What every reader returns, and the names shared by readers and writers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pancakes_data.errors import UserError
from pancakes_eval.io import GREY_WEIGHTS as _GREY_WEIGHTS

__all__ = [
    "GREY_WEIGHTS",
    "INPUT_SUFFIXES",
    "MAX_PIXELS",
    "MAX_VOXELS",
    "Geometry",
    "ImageData",
    "ReadError",
    "stem_of",
    "suffix_of",
]

# ITU-R BT.601 luma: RGB → grey everywhere in Pancakes (its home is pancakes-eval's reader module)
GREY_WEIGHTS = _GREY_WEIGHTS
# Pillow's own decompression-bomb threshold: a bigger 2D image is refused unless the caller
# raises the limit (``--max-pixels``); a 194 KB PNG can declare 13,000² pixels.
MAX_PIXELS = 89_478_485
MAX_VOXELS = 2**31  # a bigger volume is refused (its int32 indices overflow; memory runs out first)
INPUT_SUFFIXES = (
    ".png",
    ".tif",
    ".tiff",
    ".ome.tif",
    ".ome.tiff",
    ".jpg",
    ".jpeg",
    ".nii",
    ".nii.gz",
    ".nrrd",
    ".nhdr",
    ".mha",
    ".mhd",
    ".dcm",
)


class ReadError(UserError):
    """A file that cannot be read as an image the way a person sees it (message names the file)."""


def suffix_of(path: Path) -> str:
    """The image suffix of a file name (``.nii.gz`` counts as one), lower case."""
    name = path.name.lower()
    longest_first = sorted(INPUT_SUFFIXES, key=len, reverse=True)  # .nii.gz before .gz, .ome.tif before .tif
    return next((s for s in longest_first if name.endswith(s)), path.suffix.lower())


def stem_of(path: Path) -> str:
    """The file name without its image suffix."""
    suf = suffix_of(path)
    return path.name[: -len(suf)] if suf and path.name.lower().endswith(suf) else path.stem


@dataclass(frozen=True)
class Geometry:
    """Where the pixels of :attr:`ImageData.data` lie, and what writing labels back onto the input's
    own grid needs (torchio's ``Image`` keeps its affine in step with its data; so does this).

    Attributes:
        affine: (4, 4) voxel → world (RAS, mm) of ``ImageData.data`` as it is — the canonical RAS+
            voxel order for a volume that was reoriented. None for plain pictures.
        file_affine: (4, 4) voxel → world of the file's own voxel order: labels are written with it.
        orientation: (3, 2) nibabel orientation that took the file's voxel axes to ``data``'s
            (None: ``data`` is in the file's order).
        shape: the file's own data shape (a 2D NRRD's (X, Y), a one-volume 4D NIfTI's (X, Y, Z, 1)).
        nifti_header: the input's NIfTI header, which label maps are written with (NIfTI only).
        squeezed_4d: a 4D file holding one volume, read as 3D and written back 4D.
        spacing_yx: an OME-TIFF stack's pixel size (µm), written into the label stack's metadata.
        z_spacing: an OME-TIFF stack's slice distance (µm).
        series_uid: a DICOM series' SeriesInstanceUID; ``slices``: its number of files.
    """

    affine: np.ndarray | None = None
    file_affine: np.ndarray | None = None
    orientation: np.ndarray | None = None
    shape: tuple[int, ...] = ()
    nifti_header: Any = None
    squeezed_4d: bool = False
    spacing_yx: tuple[float, ...] | None = None
    z_spacing: float | None = None
    series_uid: str = ""
    slices: int = 0


@dataclass
class ImageData:
    """One input, read and ready to slice.

    Attributes:
        path: the file (or, for DICOM, the folder the series was found in).
        stem: the output name stem.
        kind: ``"2d"`` or ``"3d"``.
        data: (H, W) image, or a 3D volume in canonical RAS orientation (X, Y, Z).
        spacing: pixel/voxel size per axis of ``data`` in ``unit`` (None when unknown).
        unit: ``"mm"`` or ``"um"``.
        format: what it was read as: png, jpeg, tiff, ome-tiff, nifti, nrrd, mha, dicom.
        modality: ``"ct"`` (Hounsfield units, windowed) or ``"mr"`` (percentiles; anything else).
        geometry: where ``data``'s pixels lie and what writing labels back on the input's own grid needs.
        notes: remarks for the user (RGB converted, palette shown as displayed, …).
    """

    path: Path
    stem: str
    kind: str
    data: np.ndarray
    spacing: tuple[float, ...] | None = None
    unit: str = "mm"
    format: str = ""
    modality: str = "mr"
    geometry: Geometry = field(default_factory=Geometry)
    notes: list[str] = field(default_factory=list)

    @property
    def label_suffix(self) -> str:
        """The suffix label maps are written with: the input's own format where it has one."""
        return {"nifti": ".nii.gz", "dicom": ".nii.gz", "nrrd": ".nrrd", "mha": ".mha", "ome-tiff": ".ome.tif"}.get(
            self.format, ".png"
        )
