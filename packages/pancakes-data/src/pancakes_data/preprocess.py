"""Preprocessing shared by the importers (MegaMedical's recipe) and by inference.

* Intensity: CT → clip to a window; MR and others → clip to the 0.5–99.5 percentiles of
  voxels > 0; then min–max to [0, 1].
* Geometry: resample to square pixels, zero-pad to a square, anti-alias with a Gaussian of
  σ = ¼ · (old size / new size), resize to the target size.
* Labels: each label is resized on its own as a soft binary mask and the largest wins, so thin
  labels survive down-sampling better than with nearest-neighbour.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

__all__ = [
    "normalize_intensity",
    "pad_to_square",
    "resize_image",
    "resize_labels",
    "square_pixels",
]


PERCENTILE_SAMPLE = 1 << 24  # voxels above which the percentiles come from a regular subsample


def normalize_intensity(
    image: np.ndarray,
    *,
    modality: str = "mr",
    ct_window: tuple[float, float] = (-1000.0, 1000.0),
    percentiles: tuple[float, float] = (0.5, 99.5),
    inplace: bool = False,
) -> np.ndarray:
    """Clip and min–max an image (any dims) to [0, 1] float32.

    Args:
        image: raw intensities.
        modality: ``"ct"`` uses ``ct_window`` (Hounsfield units); anything else uses the
            ``percentiles`` of the voxels > 0 (of all voxels if none is > 0). Above
            ``PERCENTILE_SAMPLE`` voxels (a 256³ volume) the percentiles are taken on every n-th
            voxel, so memory stays bounded (a 512³ volume needs no 1.5 GB of copies for them).
        inplace: normalise a float32 ``image`` in its own memory (the caller no longer needs the raw values).
    """
    x = np.asarray(image, dtype=np.float32)
    if not np.all(np.isfinite(x)):
        raise ValueError("image contains NaN or inf")
    if modality.lower() == "ct":
        lo, hi = ct_window
    else:
        flat = x.reshape(-1)
        sample = flat[:: flat.size // PERCENTILE_SAMPLE + 1] if flat.size > PERCENTILE_SAMPLE else flat
        fg = sample[sample > 0]
        ref = fg if fg.size else sample
        lo, hi = np.percentile(ref, percentiles)
    span = float(hi - lo)
    if span <= 0:
        if inplace and x is image:
            x[...] = 0
            return x
        return np.zeros_like(x)
    # float32 throughout: numpy's float64 percentiles would promote the whole image to float64
    out = np.clip(x, np.float32(lo), np.float32(hi), out=x if inplace and x is image else None)
    out -= np.float32(lo)
    out /= np.float32(span)
    return out


def square_pixels(image: np.ndarray, spacing: Sequence[float], *, order: int = 1) -> np.ndarray:
    """Resample a 2D array to square pixels of the smaller spacing."""
    sp = np.asarray(spacing, dtype=np.float64)
    if np.allclose(sp[0], sp[1], rtol=1e-3):
        return image
    zoom = sp / sp.min()
    return ndimage.zoom(image, zoom, order=order, mode="nearest", grid_mode=True)


def pad_to_square(image: np.ndarray, *, value: float = 0) -> np.ndarray:
    """Zero-pad a 2D array symmetrically to a square."""
    h, w = image.shape
    n = max(h, w)
    top, left = (n - h) // 2, (n - w) // 2
    return np.pad(image, ((top, n - h - top), (left, n - w - left)), constant_values=value)


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Anti-aliased resize of a square 2D image to ``size × size`` (float32)."""
    x = np.asarray(image, dtype=np.float32)
    factor = x.shape[0] / size
    if factor > 1:
        x = ndimage.gaussian_filter(x, sigma=factor / 4)
    out = ndimage.zoom(x, size / x.shape[0], order=1, mode="nearest", grid_mode=True)
    return out[:size, :size]


def resize_labels(labels: np.ndarray, size: int) -> np.ndarray:
    """Resize a square 2D label map label by label (soft masks, largest wins)."""
    lab = np.asarray(labels)
    if lab.shape[0] == size:
        return lab.astype(np.int64)
    values = np.unique(lab)
    best = np.zeros((size, size), np.float32)
    out = np.zeros((size, size), np.int64)
    for v in values:
        soft = ndimage.zoom(
            (lab == v).astype(np.float32), size / lab.shape[0], order=1, mode="nearest", grid_mode=True
        )[:size, :size]
        win = soft > best
        out[win] = v
        best[win] = soft[win]
    return out
