"""Per-pair segmentation metrics: Dice, IoU, Hausdorff (percentile) distance, ASSD.

Every function takes a prediction and a reference of the same shape, 2D ``(H, W)`` or 3D
``(D, H, W)`` (any number of spatial axes works). With ``labels=None`` both are binary masks and a
float comes back; with ``labels=[...]`` both are integer label maps and one value per label comes
back, shape ``(len(labels),)``.

Empty cases (documented once, applied everywhere):

================================  ==========  ================
case                              Dice / IoU  HD / ASSD
================================  ==========  ================
both masks empty                  ``both_empty`` (default NaN)  NaN
reference empty, prediction not   0.0         inf
prediction empty, reference not   0.0         inf
================================  ==========  ================

This matches MONAI's ``compute_dice(..., ignore_empty=False)`` for the one-empty cases, and its
``ignore_empty=True`` for the both-empty case (undefined → NaN); pass ``both_empty=1.0`` to get
MONAI's ``ignore_empty=False`` convention. MONAI returns inf for surface distances when either
mask is empty, including both; we return NaN there because no surface exists to measure.

Surfaces follow MONAI: the surface of a mask is the set of its voxels removed by one binary
erosion with the face-connected structuring element (voxels on the array border count as
surface). Distances are Euclidean between surface voxel centres, scaled by ``spacing``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from pancakes_eval._array import (
    as_numpy,
    check_binary,
    check_labels,
    check_same_shape,
    parse_spacing,
)

__all__ = [
    "compute_assd",
    "compute_dice",
    "compute_hausdorff",
    "compute_hd95",
    "compute_iou",
    "distances_to_reference",
    "surface_distances",
]


def _pairs(y_pred: Any, y: Any, labels: Sequence[int] | None):
    """Yield binary (pred, ref) mask pairs, one per requested label (or the single binary pair)."""
    p = as_numpy(y_pred, name="y_pred")
    t = as_numpy(y, name="y")
    check_same_shape(p, t, names=("y_pred", "y"))
    if p.ndim == 0:
        raise ValueError("y_pred and y must have at least one spatial axis, got scalars")
    if labels is None:
        return [(check_binary(p, name="y_pred"), check_binary(t, name="y"))]
    p = check_labels(p, name="y_pred")
    t = check_labels(t, name="y")
    return [(p == int(lab), t == int(lab)) for lab in labels]


def _finish(values: list[float], labels: Sequence[int] | None) -> float | np.ndarray:
    return float(values[0]) if labels is None else np.asarray(values, dtype=np.float64)


def compute_dice(
    y_pred: Any,
    y: Any,
    *,
    labels: Sequence[int] | None = None,
    both_empty: float = float("nan"),
) -> float | np.ndarray:
    """Dice similarity coefficient 2|P∩Y| / (|P| + |Y|).

    Args:
        y_pred: prediction, binary mask or label map, shape ``(H, W)`` or ``(D, H, W)``.
        y: reference, same shape and kind as ``y_pred``.
        labels: score these labels of integer label maps; ``None`` for binary masks.
        both_empty: value when both masks are empty (undefined; NaN by default).

    Returns:
        A float for binary masks, else an array of shape ``(len(labels),)``.
    """
    out = []
    for p, t in _pairs(y_pred, y, labels):
        inter = np.count_nonzero(p & t)
        total = np.count_nonzero(p) + np.count_nonzero(t)
        out.append(both_empty if total == 0 else 2.0 * inter / total)
    return _finish(out, labels)


def compute_iou(
    y_pred: Any,
    y: Any,
    *,
    labels: Sequence[int] | None = None,
    both_empty: float = float("nan"),
) -> float | np.ndarray:
    """Intersection over union |P∩Y| / |P∪Y| (Jaccard index). Arguments as :func:`compute_dice`."""
    out = []
    for p, t in _pairs(y_pred, y, labels):
        union = np.count_nonzero(p | t)
        out.append(both_empty if union == 0 else np.count_nonzero(p & t) / union)
    return _finish(out, labels)


def _surface(mask: np.ndarray) -> np.ndarray:
    # border_value=0: voxels on the array border are surface, as in MONAI/scipy defaults.
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def _crop_to_union(p: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crop both masks to the bounding box of their union plus a one-voxel margin.

    Surfaces and distances are unchanged: all surface voxels lie inside the box, and the margin
    keeps erosion at the box edge identical to erosion in the full array.
    """
    box = _box(p | t)
    return p[box], t[box]


def surface_distances(
    y_pred: Any, y: Any, *, spacing: float | Sequence[float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances between two binary masks.

    Args:
        y_pred: binary mask, shape ``(H, W)`` or ``(D, H, W)``.
        y: binary mask, same shape.
        spacing: voxel size per axis (scalar for isotropic); ``None`` is unit spacing.

    Returns:
        ``(d_pred_to_ref, d_ref_to_pred)``: for every surface voxel of one mask, the distance to
        the nearest surface voxel of the other. Empty arrays if the source mask is empty; all
        ``inf`` if the target mask is empty.
    """
    ((p, t),) = _pairs(y_pred, y, None)
    sp = parse_spacing(spacing, p.ndim)
    if not p.any() and not t.any():
        return np.zeros(0), np.zeros(0)
    p, t = _crop_to_union(p, t)
    sp_edges, st_edges = _surface(p), _surface(t)

    def directed(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        if not src.any():
            return np.zeros(0)
        if not dst.any():
            return np.full(np.count_nonzero(src), np.inf)
        # EDT of the complement gives, at every voxel, the distance to the nearest dst voxel.
        return ndimage.distance_transform_edt(~dst, sampling=sp)[src]

    return directed(sp_edges, st_edges), directed(st_edges, sp_edges)


def _box(mask: np.ndarray) -> tuple[slice, ...]:
    """The bounding box of a non-empty mask plus a one-voxel margin (see :func:`_crop_to_union`)."""
    slices = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        idx = np.flatnonzero(mask.any(axis=other))
        slices.append(slice(max(idx[0] - 1, 0), min(idx[-1] + 2, mask.shape[axis])))
    return tuple(slices)


def distances_to_reference(
    y: Any, *, spacing: float | Sequence[float] | None = None
) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``surface_distances(·, y)`` for many candidate masks against one non-empty reference.

    The distance map to the reference's surface is computed once, so each candidate costs one
    distance transform instead of two (the Set HD95 scores up to M·K candidates per image).

    Args:
        y: non-empty binary reference mask, shape ``(H, W)`` or ``(D, H, W)``.
        spacing: voxel size per axis (scalar for isotropic); ``None`` is unit spacing.

    Returns:
        A function of a candidate mask (same shape) giving ``(d_pred_to_ref, d_ref_to_pred)``,
        equal to :func:`surface_distances` of that mask and ``y``.
    """
    t = np.asarray(y, dtype=bool)
    if not t.any():
        raise ValueError("distances_to_reference needs a non-empty reference mask")
    sp = parse_spacing(spacing, t.ndim)
    t_edges = _surface(t)
    to_ref = ndimage.distance_transform_edt(~t_edges, sampling=sp)

    def distances(y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = np.asarray(y_pred, dtype=bool)
        if not p.any():
            return np.zeros(0), np.full(np.count_nonzero(t_edges), np.inf)
        # the union's box keeps every surface voxel and the erosion at its edge (one-voxel margin)
        box = _box(p | t)
        p_edges = _surface(p[box])
        d_pt = to_ref[box][p_edges]
        d_tp = ndimage.distance_transform_edt(~p_edges, sampling=sp)[t_edges[box]]
        return d_pt, d_tp

    return distances


def _hausdorff_from(d_pt: np.ndarray, d_tp: np.ndarray, percentile: float) -> float:
    if d_pt.size == 0 and d_tp.size == 0:
        return float("nan")
    if d_pt.size == 0 or d_tp.size == 0 or np.isinf(d_pt).any() or np.isinf(d_tp).any():
        return float("inf")
    return float(max(np.percentile(d_pt, percentile), np.percentile(d_tp, percentile)))


def compute_hausdorff(
    y_pred: Any,
    y: Any,
    *,
    percentile: float = 100.0,
    spacing: float | Sequence[float] | None = None,
    labels: Sequence[int] | None = None,
) -> float | np.ndarray:
    """Symmetric Hausdorff distance: max of the two directed ``percentile``-th surface distances.

    Percentiles use linear interpolation (numpy's default, identical to ``torch.quantile``).

    Args:
        y_pred: prediction, binary mask or label map, shape ``(H, W)`` or ``(D, H, W)``.
        y: reference, same shape and kind.
        percentile: 100 for the classic Hausdorff distance, 95 for HD95.
        spacing: voxel size per axis, in the unit the result should have (e.g. mm).
        labels: score these labels of integer label maps; ``None`` for binary masks.
    """
    if not 0.0 <= percentile <= 100.0:
        raise ValueError(f"percentile must be within [0, 100], got {percentile}")
    out = []
    for p, t in _pairs(y_pred, y, labels):
        d_pt, d_tp = surface_distances(p, t, spacing=spacing)
        out.append(_hausdorff_from(d_pt, d_tp, percentile))
    return _finish(out, labels)


def compute_hd95(
    y_pred: Any,
    y: Any,
    *,
    spacing: float | Sequence[float] | None = None,
    labels: Sequence[int] | None = None,
) -> float | np.ndarray:
    """95th-percentile Hausdorff distance; see :func:`compute_hausdorff`."""
    return compute_hausdorff(y_pred, y, percentile=95.0, spacing=spacing, labels=labels)


def compute_assd(
    y_pred: Any,
    y: Any,
    *,
    spacing: float | Sequence[float] | None = None,
    labels: Sequence[int] | None = None,
) -> float | np.ndarray:
    """Average symmetric surface distance: the mean over both directed distance sets pooled.

    Arguments as :func:`compute_hausdorff` (without ``percentile``).
    """
    out = []
    for p, t in _pairs(y_pred, y, labels):
        d_pt, d_tp = surface_distances(p, t, spacing=spacing)
        if d_pt.size == 0 and d_tp.size == 0:
            out.append(float("nan"))
        elif d_pt.size == 0 or d_tp.size == 0:
            out.append(float("inf"))
        else:
            out.append(float(np.concatenate([d_pt, d_tp]).mean()))
    return _finish(out, labels)
