"""Agreement between two label maps (how alike two protocols are): normalised mutual information."""

from __future__ import annotations

from typing import Any

import numpy as np

from pancakes_eval._array import as_numpy

__all__ = ["compute_nmi"]


def compute_nmi(a: Any, b: Any) -> float:
    """Normalised mutual information 2·I(a; b) / (H(a) + H(b)) of two integer label maps.

    1 when one map is a relabelling of the other, 0 when they are independent; defined as 1 when
    both maps are constant. Label values are remapped first, so any integers work.

    Args:
        a, b: label maps of the same shape.
    """
    x, y = np.asarray(as_numpy(a, name="a")).ravel(), np.asarray(as_numpy(b, name="b")).ravel()
    if x.shape != y.shape:
        raise ValueError(f"label maps must have the same shape, got {np.shape(a)} and {np.shape(b)}")
    _, xi = np.unique(x, return_inverse=True)
    _, yi = np.unique(y, return_inverse=True)
    ka, kb = int(xi.max()) + 1, int(yi.max()) + 1
    joint = np.bincount(xi * kb + yi, minlength=ka * kb).reshape(ka, kb) / x.size
    pa, pb = joint.sum(1), joint.sum(0)
    nz = joint > 0
    mi = float((joint[nz] * np.log(joint[nz] / (pa[:, None] * pb[None, :])[nz])).sum())
    ha = -float((pa[pa > 0] * np.log(pa[pa > 0])).sum())
    hb = -float((pb[pb > 0] * np.log(pb[pb > 0])).sum())
    return 1.0 if ha + hb == 0 else 2 * mi / (ha + hb)
