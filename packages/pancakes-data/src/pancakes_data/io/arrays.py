"""Images already in memory (a napari layer, a numpy array) as inputs of the segment pipeline.

An :class:`ArrayInput` goes wherever a file does: ``collect_inputs`` keeps it, ``read_input`` turns
it into :class:`ImageData`, and its labels are written like a file's — a 2D image as PNG, a volume
as NIfTI whose affine is the given voxel size. The pipeline's run record names it and the SHA-256
of its pixels, so ``--resume`` notices a changed array.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pancakes_data.io.base import Geometry, ImageData, ReadError

__all__ = ["ArrayInput"]


@dataclass(frozen=True, eq=False)
class ArrayInput:
    """One in-memory image.

    Attributes:
        name: the output name stem (``labels/<name>_m00.png``); characters other than letters,
            digits, ``-`` and ``_`` become ``_``.
        data: (H, W) image, or (X, Y, Z) volume (sliced along its last axis by default, like the
            axial axis of a RAS volume): an array, or any array-like with ``shape``, ``dtype`` and
            ``__array__`` (a dask array, a lazy slice of a napari layer), read only when this image
            is fingerprinted or segmented — so a set of many large images stays one image in memory.
        spacing: pixel/voxel size per axis of ``data`` (None: unknown).
        unit: ``"mm"`` or ``"um"``.
    """

    name: str
    data: np.ndarray
    spacing: tuple[float, ...] | None = None
    unit: str = "mm"

    def __post_init__(self) -> None:
        # shape and dtype without reading the pixels (np.shape reads an array-like's own .shape)
        shape = tuple(np.shape(self.data))
        dtype = np.dtype(getattr(self.data, "dtype", None) or np.asarray(self.data).dtype)
        if len(shape) not in (2, 3):
            raise ReadError(f"image {self.name!r}: expected a 2D image or a 3D volume, got shape {shape}")
        if not np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.complexfloating):
            raise ReadError(f"image {self.name!r}: pixel values of type {dtype} are not intensities")
        if self.spacing is not None and (
            len(self.spacing) != len(shape) or not all(np.isfinite(s) and s > 0 for s in self.spacing)
        ):
            raise ReadError(f"image {self.name!r}: spacing {self.spacing} does not fit shape {shape}")
        if self.unit not in ("mm", "um"):
            raise ReadError(f"image {self.name!r}: unit must be 'mm' or 'um', got {self.unit!r}")

    @property
    def stem(self) -> str:
        return re.sub(r"[^A-Za-z0-9_-]+", "_", self.name).strip("_") or "image"

    @property
    def kind(self) -> str:
        return "3d" if len(np.shape(self.data)) == 3 else "2d"

    def sha256(self) -> str:
        return hashlib.sha256(np.ascontiguousarray(self.data).tobytes()).hexdigest()

    def read(self) -> ImageData:
        """The image as the readers give files (a float32 copy: the pipeline normalises in place)."""
        data = np.array(self.data, dtype=np.float32)
        spacing = tuple(float(s) for s in self.spacing) if self.spacing is not None else None
        if self.kind == "2d":
            return ImageData(Path(self.stem), self.stem, "2d", data, spacing, self.unit, "png")
        affine = np.diag([*(spacing or (1.0, 1.0, 1.0)), 1.0])
        geometry = Geometry(affine=affine, file_affine=affine, shape=tuple(data.shape))
        return ImageData(Path(self.stem), self.stem, "3d", data, spacing, self.unit, "nifti", geometry=geometry)
