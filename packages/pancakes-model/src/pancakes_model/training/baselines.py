"""Baselines the evaluation compares Pancakes with (same output format: (S, M, H, W) label maps).

Both get the same label budget as Pancakes: at most K labels per protocol, M protocols.

* :func:`kmeans_protocols` — intensity k-means pooled over the set, labels ordered by mean
  intensity, so label k means "the k-th darkest class" in every image: consistent across the set.
  Protocol m uses k_m clusters, k_m evenly spaced from 2 to K.
* :func:`felzenszwalb_protocols` — Felzenszwalb–Huttenlocher superpixels computed per image
  (scikit-image), labels numbered per image in raster order: not consistent across the set.
  Protocol m uses scale 25·2^m and a minimum segment size of H·W / K (so at most K segments).
"""

from __future__ import annotations

import numpy as np

__all__ = ["felzenszwalb_protocols", "kmeans_protocols"]


def _kmeans_1d(values: np.ndarray, k: int, *, iters: int = 30) -> np.ndarray:
    """Sorted centres of a 1D k-means on ``values`` in [0, 1] (weighted Lloyd on a 256-bin histogram)."""
    hist, edges = np.histogram(values, bins=256, range=(0.0, 1.0))
    x = (edges[:-1] + edges[1:]) / 2
    w = hist.astype(np.float64)
    cdf = np.cumsum(w) / max(w.sum(), 1)
    centres = np.interp((np.arange(k) + 0.5) / k, cdf, x)  # quantile initialisation
    for _ in range(iters):
        assign = np.abs(x[:, None] - centres[None]).argmin(axis=1)
        new = np.array(
            [
                np.average(x[assign == j], weights=w[assign == j]) if w[assign == j].sum() > 0 else centres[j]
                for j in range(k)
            ]
        )
        if np.allclose(new, centres):
            break
        centres = new
    return np.sort(centres)


def kmeans_protocols(images: np.ndarray, M: int = 8, K: int = 20) -> np.ndarray:
    """(S, H, W) images in [0, 1] → (S, M, H, W) label maps; protocol m has k_m ≤ K intensity classes."""
    imgs = np.asarray(images, dtype=np.float64)
    out = np.zeros((imgs.shape[0], M, *imgs.shape[1:]), dtype=np.int64)
    ks = np.unique(np.round(np.linspace(2, max(K, 2), M)).astype(int)) if K > 1 else np.ones(1, int)
    for m in range(M):
        centres = _kmeans_1d(imgs.ravel(), int(ks[min(m, len(ks) - 1)]))
        bounds = (centres[1:] + centres[:-1]) / 2
        out[:, m] = np.searchsorted(bounds, imgs)
    return out


def felzenszwalb_protocols(images: np.ndarray, M: int = 8, K: int = 20) -> np.ndarray:
    """(S, H, W) → (S, M, H, W): per-image Felzenszwalb superpixels at M scales, ≤ K segments each
    (needs scikit-image)."""
    try:
        from skimage.segmentation import felzenszwalb
    except ImportError as exc:
        raise ImportError("the Felzenszwalb baseline needs scikit-image: pip install scikit-image") from exc
    imgs = np.asarray(images, dtype=np.float64)
    out = np.zeros((imgs.shape[0], M, *imgs.shape[1:]), dtype=np.int64)
    for m in range(M):
        for s in range(imgs.shape[0]):
            seg = felzenszwalb(imgs[s], scale=25 * 2**m, sigma=0.5, min_size=max(20, imgs[s].size // K))
            # min_size bounds the count in practice; the cap makes it a guarantee.
            out[s, m] = np.minimum(seg, K - 1)
    return out
