"""Geometry in one place: the plan that maps a 2D slice to the model's square grid, and back.

Forward (importers, inference): resample to square pixels of the finer spacing, zero-pad
symmetrically to a square, anti-alias and resize to ``size × size``. Inverse (inference): the
source coordinates, in the model grid, of every output row and column — what mapping predictions
back to the input's own pixels needs. The preprocessing settings travel with a model's weights
(``Preprocess``, stored in the weights' metadata), so a model trained with other settings is
prepared the way it was trained.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np

from pancakes_data.preprocess import normalize_intensity, pad_to_square, resize_labels, resize_to_square, square_pixels

__all__ = ["DEFAULT_PREPROCESS", "Preprocess", "SlicePlan"]


@dataclass(frozen=True)
class Preprocess:
    """Settings of the preprocessing a model expects (defaults: how the shipped model was trained).

    Attributes:
        size: side of the model's square input grid.
        percentiles: intensity clipping percentiles of the voxels > 0 (MR and most modalities).
        ct_window: Hounsfield window for CT inputs.
    """

    size: int = 128
    percentiles: tuple[float, float] = (0.5, 99.5)
    ct_window: tuple[float, float] = (-1000.0, 1000.0)

    def __post_init__(self) -> None:
        if self.size < 16 or self.size % 16:
            raise ValueError(f"preprocess size must be a multiple of 16, got {self.size}")
        lo, hi = self.percentiles
        if not 0 <= lo < hi <= 100:
            raise ValueError(f"preprocess percentiles must satisfy 0 <= lo < hi <= 100, got {self.percentiles}")

    @classmethod
    def from_dict(cls, data: dict | None) -> Preprocess:
        """From a weights file's metadata; missing keys take the defaults, unknown keys are refused."""
        data = dict(data or {})
        unknown = sorted(set(data) - {"size", "percentiles", "ct_window"})
        if unknown:
            raise ValueError(f"unknown preprocess keys {unknown}")
        for key in ("percentiles", "ct_window"):
            if key in data:
                data[key] = tuple(float(v) for v in data[key])
        return cls(**data)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def with_size(self, size: int) -> Preprocess:
        """The same settings for a model grid of ``size``."""
        return replace(self, size=int(size))

    def normalize(self, image: np.ndarray, *, modality: str = "mr", inplace: bool = False) -> np.ndarray:
        """Intensities to [0, 1] float32 with these settings (see ``normalize_intensity``)."""
        return normalize_intensity(
            image, modality=modality, ct_window=self.ct_window, percentiles=self.percentiles, inplace=inplace
        )


DEFAULT_PREPROCESS = Preprocess()


@dataclass(frozen=True)
class SlicePlan:
    """How one 2D slice of shape ``shape`` with pixel ``spacing`` maps to ``size × size``.

    Attributes:
        shape: the slice's (H, W).
        square: its shape after resampling to square pixels.
        pad: (top, left) zero padding to the square side ``n``.
        n: side of the padded square.
        size: side of the model grid.
        spacing: (row, col) pixel size, or None (square pixels assumed).
    """

    shape: tuple[int, int]
    square: tuple[int, int]
    pad: tuple[int, int]
    n: int
    size: int
    spacing: tuple[float, float] | None = None

    @classmethod
    def for_slice(cls, shape: Sequence[int], spacing: Sequence[float] | None, size: int = 128) -> SlicePlan:
        h, w = int(shape[0]), int(shape[1])
        sq = (h, w)
        if spacing is not None:
            sp = np.asarray(spacing, dtype=np.float64)
            if not np.allclose(sp[0], sp[1], rtol=1e-3):
                # the shape ndimage.zoom gives with zoom = spacing / min(spacing)
                zoom = sp / sp.min()
                sq = (round(h * zoom[0]), round(w * zoom[1]))
        n = max(sq)
        return cls((h, w), sq, ((n - sq[0]) // 2, (n - sq[1]) // 2), n, size, tuple(spacing) if spacing else None)

    def forward(self, image: np.ndarray) -> np.ndarray:
        """Slice (H, W) in [0, 1] → (size, size) float32 in [0, 1]."""
        sq = square_pixels(image, self.spacing, order=1) if self.spacing is not None else image
        if tuple(sq.shape) != self.square:
            raise ValueError(f"slice has shape {image.shape}, the plan was made for {self.shape}")
        return np.clip(resize_to_square(sq, self.size), 0.0, 1.0)

    def forward_labels(self, labels: np.ndarray) -> np.ndarray:
        """Label map (H, W) → (size, size), label by label (soft masks, largest wins)."""
        sq = square_pixels(labels, self.spacing, order=0) if self.spacing is not None else labels
        return resize_labels(pad_to_square(sq), self.size)

    def inverse_coords(self, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Source coordinates in the model grid (pixel centres at integers) of output rows and columns.

        Args:
            rows: the output rows wanted (default: all H).

        Returns:
            (rows (R,), cols (W,)) float64: the inverse of square-pixel resampling, padding, resizing.
        """
        h_out, w_out = self.shape
        top, left = self.pad
        h_sq, w_sq = self.square
        scale = self.size / self.n
        r = np.arange(h_out) if rows is None else np.asarray(rows)
        src_rows = ((r + 0.5) * h_sq / h_out - 0.5 + top + 0.5) * scale - 0.5
        src_cols = ((np.arange(w_out) + 0.5) * w_sq / w_out - 0.5 + left + 0.5) * scale - 0.5
        return src_rows, src_cols
