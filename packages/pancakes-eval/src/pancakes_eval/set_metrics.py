"""Set metrics of the Pancakes paper (eq. 7): score the best (protocol, label) candidate.

A model predicts, for each of S images of a set, M protocols (label maps with values 0..K-1).
Given one binary reference mask per image, every candidate (m, k) gets the mean over the set of
a per-image score; the Set score is the best candidate's mean:

    Set Dice = max_{m,k} mean_s Dice(pred[s, m] == k, y[s])

Set IoU is the same with IoU; Set HD95 takes the *minimum* over (m, k) of the mean HD95, and its
winner is chosen independently of the Dice winner. Because the mean runs over the set before the
max, a candidate only scores well if label k of protocol m marks the same structure in every
image: the metric rewards accuracy *and* consistency across the set.

Undefined per-image values (reference and candidate both empty) are NaN and skipped by the mean
over the set; the sampler of a well-formed evaluation never produces them (the reference label
is present in every image).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pancakes_eval._array import as_numpy, check_binary, check_labels, parse_spacing
from pancakes_eval.metrics import _hausdorff_from, distances_to_reference, surface_distances

__all__ = [
    "SetScore",
    "candidate_overlaps",
    "compute_set_dice",
    "compute_set_hd95",
    "compute_set_iou",
    "to_label_maps",
]


@dataclass(frozen=True)
class SetScore:
    """The result of a set metric.

    Attributes:
        score: the best candidate's mean over the set (NaN if no candidate is defined).
        protocol: winning protocol index m (-1 if undefined).
        label: winning label index k (-1 if undefined).
        per_image: the winner's per-image values, shape ``(S,)``.
        table: mean over the set for every candidate, shape ``(M, K)``.
        metric: ``"dice"``, ``"iou"`` or ``"hd95"``.
    """

    score: float
    protocol: int
    label: int
    per_image: np.ndarray
    table: np.ndarray
    metric: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "score": self.score,
            "protocol": self.protocol,
            "label": self.label,
            "per_image": self.per_image.tolist(),
        }


def to_label_maps(pred: Any, y_ndim: int, *, num_labels: int | None = None) -> tuple[np.ndarray, int]:
    """Bring predictions to integer label maps ``(S, M, *spatial)`` and return them with K.

    Args:
        pred: label maps ``(S, M, *spatial)`` with integer values in ``[0, K)``, or probabilities
            ``(S, M, K, *spatial)`` (floating point; argmax over K is taken, as the paper does).
        y_ndim: number of axes of the reference ``(S, *spatial)``.
        num_labels: K. Inferred from the probability axis, or as ``max + 1`` for label maps.
    """
    p = as_numpy(pred, name="pred")
    if num_labels is not None and int(num_labels) < 1:
        raise ValueError(f"num_labels (K) must be >= 1, got {num_labels}")
    if p.ndim == y_ndim + 2 and np.issubdtype(p.dtype, np.floating):
        if not np.all(np.isfinite(p)):
            raise ValueError("pred probabilities contain NaN or inf")
        k = p.shape[2]
        if num_labels is not None and int(num_labels) != k:
            raise ValueError(f"num_labels={num_labels} but pred has K={k} on axis 2")
        return p.argmax(axis=2), k
    if p.ndim != y_ndim + 1:
        raise ValueError(
            f"pred must be label maps (S, M, *spatial) or probabilities (S, M, K, *spatial) for a "
            f"reference of shape (S, *spatial) with {y_ndim} axes; got pred shape {p.shape}"
        )
    p = check_labels(p, name="pred")
    k_seen = int(p.max()) + 1 if p.size else 1
    if num_labels is None:
        return p, k_seen
    if k_seen > int(num_labels):
        raise ValueError(f"pred holds label {k_seen - 1} but num_labels (K) is {num_labels}")
    return p, int(num_labels)


def _prepare(pred: Any, y: Any, num_labels: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    t = as_numpy(y, name="y")
    if t.ndim < 2:
        raise ValueError(f"y must be (S, *spatial) binary masks, got shape {t.shape}")
    if t.shape[0] == 0:
        raise ValueError("the set is empty (S = 0)")
    t = check_binary(t, name="y")
    p, k = to_label_maps(pred, t.ndim, num_labels=num_labels)
    if p.shape[0] != t.shape[0] or p.shape[2:] != t.shape[1:]:
        raise ValueError(f"pred (S, M, *spatial) = {p.shape} does not match y (S, *spatial) = {t.shape}")
    if p.shape[1] == 0:
        raise ValueError("pred has no protocols (M = 0)")
    return p, t, k


def candidate_overlaps(
    pred: Any, y: Any, *, num_labels: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Count, for every image and candidate, |P∩Y|, |P| and |Y| in one vectorised pass.

    Args:
        pred: label maps ``(S, M, *spatial)`` or probabilities ``(S, M, K, *spatial)``.
        y: binary references ``(S, *spatial)``.
        num_labels: K (see :func:`to_label_maps`).

    Returns:
        ``(inter, pred_size, ref_size)`` of shapes ``(S, M, K)``, ``(S, M, K)`` and ``(S,)``.
    """
    p, t, k = _prepare(pred, y, num_labels)
    s, m = p.shape[:2]
    flat = p.reshape(s, m, -1)
    # One flat bin per (s, m, k): a single bincount replaces S·M·K mask comparisons.
    offset = (np.arange(s * m, dtype=np.int64) * (2 * k)).reshape(s, m, 1)
    # Bin 2·(s, m, k) + [pixel in reference]: one bincount yields |P∩Y| and |P \ Y| together.
    code = offset + 2 * flat
    code += t.reshape(s, 1, -1)
    counts = np.bincount(code.ravel(), minlength=2 * s * m * k).reshape(s, m, k, 2)
    inter = counts[..., 1]
    pred_size = counts.sum(axis=-1)
    return inter, pred_size, t.reshape(s, -1).sum(axis=1)


def _best(per_image: np.ndarray, metric: str, *, maximize: bool) -> SetScore:
    """Reduce (S, M, K) per-image values to the Set score (mean over S, best over M, K)."""
    with warnings.catch_warnings():
        # all-NaN candidates (label absent everywhere, reference empty) are NaN by design
        warnings.simplefilter("ignore", RuntimeWarning)
        table = np.nanmean(per_image, axis=0)
    if np.all(np.isnan(table)):
        s = per_image.shape[0]
        return SetScore(float("nan"), -1, -1, np.full(s, np.nan), table, metric)
    flat = np.nanargmax(table) if maximize else np.nanargmin(table)
    m, k = np.unravel_index(flat, table.shape)
    return SetScore(float(table[m, k]), int(m), int(k), per_image[:, m, k].copy(), table, metric)


def compute_set_dice(pred: Any, y: Any, *, num_labels: int | None = None, both_empty: float = float("nan")) -> SetScore:
    """Set Dice = max over (m, k) of the mean over the set of Dice(pred[s, m] == k, y[s]).

    Args:
        pred: label maps ``(S, M, *spatial)`` or probabilities ``(S, M, K, *spatial)``.
        y: binary reference masks ``(S, *spatial)``, one per image.
        num_labels: K; inferred if omitted.
        both_empty: per-image value when reference and candidate are both empty.

    Returns:
        :class:`SetScore` with the score, the winning (m, k), its per-image Dice ``(S,)`` and the
        ``(M, K)`` table of set means.
    """
    inter, psize, tsize = candidate_overlaps(pred, y, num_labels=num_labels)
    denom = psize + tsize[:, None, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = np.where(denom > 0, 2.0 * inter / denom, both_empty)
    return _best(dice, "dice", maximize=True)


def compute_set_iou(pred: Any, y: Any, *, num_labels: int | None = None, both_empty: float = float("nan")) -> SetScore:
    """Set IoU: as :func:`compute_set_dice` with IoU = |P∩Y| / |P∪Y|."""
    inter, psize, tsize = candidate_overlaps(pred, y, num_labels=num_labels)
    union = psize + tsize[:, None, None] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / union, both_empty)
    return _best(iou, "iou", maximize=True)


def _per_image_spacing(spacing: Any, s: int, ndim: int) -> list[tuple[float, ...]]:
    if spacing is not None and np.ndim(spacing) == 2:
        rows = np.asarray(spacing, dtype=np.float64)
        if rows.shape != (s, ndim):
            raise ValueError(f"per-image spacing must have shape (S, ndim) = {(s, ndim)}, got {rows.shape}")
        return [parse_spacing(tuple(r), ndim) for r in rows]
    return [parse_spacing(spacing, ndim)] * s


def compute_set_hd95(
    pred: Any,
    y: Any,
    *,
    num_labels: int | None = None,
    spacing: float | Sequence[float] | None = None,
) -> SetScore:
    """Set HD95 = min over (m, k) of the mean over the set of HD95(pred[s, m] == k, y[s]).

    A candidate absent from an image has HD95 = inf there, so its mean is inf: only labels present
    in every image can win. The winner is chosen on HD95 alone, independently of Set Dice.

    Args:
        pred: label maps ``(S, M, *spatial)`` or probabilities ``(S, M, K, *spatial)``.
        y: binary reference masks ``(S, *spatial)``.
        num_labels: K; inferred if omitted.
        spacing: voxel size per spatial axis (explicit; ``None`` is unit spacing), or one row
            per image, shape ``(S, ndim)``, when the images of the set have different voxels.
    """
    p, t, k = _prepare(pred, y, num_labels)
    s, m = p.shape[:2]
    spacings = _per_image_spacing(spacing, s, t.ndim - 1)
    hd = np.full((s, m, k), np.inf)
    flat = p.reshape(s, m, -1)
    present = np.stack([np.stack([np.bincount(flat[si, mi], minlength=k) > 0 for mi in range(m)]) for si in range(s)])
    ref_empty = ~t.reshape(s, -1).any(axis=1)
    # A candidate absent from an image with a non-empty reference has mean HD95 = inf whatever the
    # other images say: only candidates present wherever the reference is need distances.
    needed = (present | ref_empty[:, None, None]).all(axis=0)  # (M, K)
    for si in range(s):
        if ref_empty[si]:
            distances = functools.partial(surface_distances, y=t[si], spacing=spacings[si])
        else:  # one distance map of the reference for all of this image's candidates
            distances = distances_to_reference(t[si], spacing=spacings[si])
        for mi in range(m):
            lab = p[si, mi]
            for ki in np.flatnonzero(needed[mi] & present[si, mi]):
                d_pt, d_tp = distances(lab == ki)
                hd[si, mi, ki] = _hausdorff_from(d_pt, d_tp, 95.0)
            if ref_empty[si]:
                hd[si, mi, ~present[si, mi]] = np.nan
    return _best(hd, "hd95", maximize=False)
