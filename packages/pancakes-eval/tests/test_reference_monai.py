"""Agreement with an independent implementation (MONAI), ≥ 200 random 2D and 3D cases."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from pancakes_eval import compute_assd, compute_dice, compute_hd95, compute_iou

monai_metrics = pytest.importorskip("monai.metrics")
torch = pytest.importorskip("torch")

pytestmark = pytest.mark.reference


def random_mask(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Blobby random masks: thresholded smoothed noise, never empty."""
    from scipy import ndimage

    noise = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=rng.uniform(1, 3))
    m = noise > np.quantile(noise, rng.uniform(0.4, 0.9))
    if not m.any():
        m.flat[rng.integers(m.size)] = True
    return m


def cases(n: int, seed: int):
    rng = np.random.default_rng(seed)
    for i in range(n):
        if i % 2:
            shape = tuple(int(s) for s in rng.integers(8, 40, size=2))
        else:
            shape = tuple(int(s) for s in rng.integers(6, 18, size=3))
        spacing = tuple(float(s) for s in rng.uniform(0.3, 3.0, size=len(shape)))
        if i % 5 == 0:
            spacing = (1.0,) * len(shape)
        yield random_mask(rng, shape), random_mask(rng, shape), spacing


def onehot(m: np.ndarray):
    return torch.from_numpy(m[None, None].astype(np.float32))


@pytest.mark.parametrize("chunk", range(4))
def test_agrees_with_monai(chunk):
    # 4 chunks × 60 = 240 random cases, half 2D, half 3D, most with anisotropic spacing.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for pred, ref, spacing in cases(60, seed=chunk):
            P, Y = onehot(pred), onehot(ref)
            kw = {"include_background": True}
            m_dice = monai_metrics.compute_dice(P, Y, **kw).item()
            m_iou = monai_metrics.compute_iou(P, Y, **kw).item()
            m_hd = monai_metrics.compute_hausdorff_distance(P, Y, percentile=95, spacing=spacing, **kw).item()
            m_as = monai_metrics.compute_average_surface_distance(P, Y, symmetric=True, spacing=spacing, **kw).item()
            assert compute_dice(pred, ref) == pytest.approx(m_dice, abs=1e-6)
            assert compute_iou(pred, ref) == pytest.approx(m_iou, abs=1e-6)
            assert compute_hd95(pred, ref, spacing=spacing) == pytest.approx(m_hd, abs=1e-4)
            assert compute_assd(pred, ref, spacing=spacing) == pytest.approx(m_as, abs=1e-4)
