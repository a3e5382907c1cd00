"""Preprocessing shared by the importers (MegaMedical's recipe) and by inference.

* Intensity: CT → clip to a window; MR and others → clip to the 0.5–99.5 percentiles of
  voxels > 0; then min–max to [0, 1].
* Geometry: resample to square pixels, zero-pad to a square, anti-alias with a Gaussian of
  σ = ¼ · (old size / new size), resize to the target size (linear interpolation). Blur and
  interpolation together are one sparse (size × n) matrix per axis, applied as two products: the
  blurred full-size image that ``ndimage.gaussian_filter`` made is never made
  (``benchmarks/bench_resize.py``). Sparse, not dense: ~1/30 of the multiply-adds at 4000², and
  scipy's sparse product runs in the calling thread — a dense ``@`` starts OpenBLAS's own thread
  pool, which fought the model's threads and cost `pancakes segment` a third of its speed.
* Labels: each label is resized on its own as a soft binary mask and the largest wins, so thin
  labels survive down-sampling better than with nearest-neighbour.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from scipy import ndimage, sparse

__all__ = [
    "normalize_intensity",
    "pad_to_square",
    "resample_matrix",
    "resize_image",
    "resize_labels",
    "resize_to_square",
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


def _mirror(index: np.ndarray, n: int) -> np.ndarray:
    """Indices outside [0, n) reflected about the edges (d c b a | a b c d | d c b a), as
    ``ndimage.gaussian_filter``'s default mode."""
    index = np.mod(index, 2 * n)
    return np.where(index >= n, 2 * n - 1 - index, index)


@lru_cache(maxsize=16)
def resample_matrix(n: int, size: int) -> sparse.csr_array:
    """The (size, n) float32 weights of :func:`resize_image` along one axis of length n, sparse.

    Row i is a Gaussian of σ = n / (4 · size) (when shrinking; mirrored at the edges, radius 4σ,
    as ``ndimage.gaussian_filter``) evaluated by linear interpolation at the output pixel's centre
    (i + ½) · n / size − ½, clamped to the edge pixels (as ``ndimage.zoom`` with ``order=1``,
    ``grid_mode=True``, ``mode="nearest"``). Cached per (n, size): do not modify it.
    """
    factor = n / size
    pos = np.clip((np.arange(size) + 0.5) * factor - 0.5, 0, n - 1)
    lower = np.floor(pos).astype(np.int64)
    upper = np.minimum(lower + 1, n - 1)
    frac = pos - lower
    if factor > 1:
        sigma = factor / 4
        radius = int(4.0 * sigma + 0.5)  # ndimage.gaussian_filter's truncate = 4
        taps = np.arange(-radius, radius + 1)
        kernel = np.exp(-0.5 * (taps / sigma) ** 2)
        kernel /= kernel.sum()
    else:
        taps, kernel = np.zeros(1, np.int64), np.ones(1)
    rows = np.broadcast_to(np.arange(size)[:, None], (size, taps.size))
    parts = [
        (_mirror(index[:, None] + taps, n), share[:, None] * kernel)
        for index, share in ((lower, 1 - frac), (upper, frac))
    ]
    cols = np.concatenate([c.ravel() for c, _ in parts])
    values = np.concatenate([v.ravel() for _, v in parts])
    # coo → csr sums the duplicates (mirrored taps, lower = upper at the edge) in float64
    weights = sparse.coo_array((values, (np.concatenate([rows.ravel()] * 2), cols)), shape=(size, n)).tocsr()
    weights.sum_duplicates()
    return weights.astype(np.float32)


def _finite(x: np.ndarray) -> bool:
    """Whether every value is finite, without an image-sized mask: a float64 sum of float32
    values cannot overflow, and one NaN or inf makes it non-finite."""
    return bool(np.isfinite(np.sum(x, dtype=np.float64)))


def _resize_separable(x: np.ndarray, size: int) -> np.ndarray:
    """The same resize with ndimage's filters: for images with NaN or inf, which a matrix product
    would spread over whole rows and columns instead of the blur's reach."""
    factor = x.shape[0] / size
    if factor > 1:
        x = ndimage.gaussian_filter(x, sigma=factor / 4)
    out = ndimage.zoom(x, size / x.shape[0], order=1, mode="nearest", grid_mode=True)
    return out[:size, :size]


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Anti-aliased resize of a square 2D image to ``size × size`` (float32).

    Equals ``ndimage.gaussian_filter`` (σ = ¼ · n / size when shrinking) followed by
    ``ndimage.zoom(order=1, grid_mode=True, mode="nearest")`` to float32 rounding, as
    W · image · Wᵀ with the sparse W = :func:`resample_matrix`.
    """
    x = np.asarray(image, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] != x.shape[1]:
        raise ValueError(f"resize_image needs a square 2D image, got shape {x.shape}")
    return resize_to_square(x, size)  # a square needs no padding: the same products


def resize_to_square(image: np.ndarray, size: int) -> np.ndarray:
    """``resize_image(pad_to_square(image), size)`` without the padded copy (float32).

    The zero rows and columns of the padding add nothing to W · image · Wᵀ, so only the columns of
    W that meet the image are used (a 9000 × 4000 slice pads to 324 MB otherwise).
    """
    x = np.asarray(image, dtype=np.float32)
    h, w = x.shape
    n = max(h, w)
    if not _finite(x):
        return _resize_separable(pad_to_square(x), size)
    weights = resample_matrix(n, size)
    top, left = (n - h) // 2, (n - w) // 2
    rows, cols = weights[:, top : top + h], weights[:, left : left + w]
    return np.ascontiguousarray((cols @ (rows @ x).T).T, dtype=np.float32)  # two sparse × dense products


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
