"""Why a Set Dice is what it is: over-split (the union of labels would score higher) or too
coarse / too fine (the winning label's precision and recall).

A model may find a structure but split it over several labels of one protocol (nuclei spread over
"bright" and "dim" labels), or offer only labels much larger than the structure (fine parcels
inside a coarse region). :func:`compute_set_diagnosis` tells the two apart on one set:

* ``best_single`` — the Set Dice (best label of any protocol);
* ``best_union`` — the best, over protocols, of the Set Dice of the union of that protocol's labels
  lying mostly inside the reference (at least ``inside`` of their pixels over the whole set, so the
  union is the same labels in every image); ``best_union − best_single`` measures over-splitting;
* ``precision`` / ``recall`` — of the winning label, means over the set: low precision with high
  recall means too coarse, the reverse too fine;
* ``finest_labels`` / ``coarsest_labels`` — the labels one image shows in the protocol that uses
  the most / the fewest (means over the set): whether any protocol goes down to fine parcels and
  whether any is a clean partition of a few classes.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from pancakes_eval.set_metrics import candidate_overlaps

__all__ = ["SetDiagnosis", "compute_set_diagnosis"]


@dataclass(frozen=True)
class SetDiagnosis:
    """See the module docstring; ``union_labels`` counts the labels of the best union."""

    best_single: float
    best_union: float
    precision: float
    recall: float
    union_labels: int
    finest_labels: float = float("nan")
    coarsest_labels: float = float("nan")

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _nanmean(x: np.ndarray, axis: int = 0) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(x, axis=axis)


def compute_set_diagnosis(pred: Any, y: Any, *, num_labels: int | None = None, inside: float = 0.5) -> SetDiagnosis:
    """Diagnose one set (see module docstring).

    Args:
        pred: label maps ``(S, M, *spatial)`` or probabilities ``(S, M, K, *spatial)``.
        y: binary reference masks ``(S, *spatial)``.
        num_labels: K (inferred if omitted).
        inside: least fraction of a label's pixels (summed over the set) inside the reference for
            it to join the union.
    """
    if not 0 < inside <= 1:
        raise ValueError(f"inside must lie within (0, 1], got {inside}")
    inter, psize, tsize = candidate_overlaps(pred, y, num_labels=num_labels)  # (S, M, K), (S, M, K), (S,)
    inter, psize, tsize = inter.astype(np.float64), psize.astype(np.float64), tsize.astype(np.float64)
    # labels an image shows per protocol (label maps: a pixel or more; probabilities: an expected one)
    used = (psize >= 1).sum(axis=2).mean(axis=0)  # (M,)
    spread = {"finest_labels": float(used.max()), "coarsest_labels": float(used.min())}
    denom = psize + tsize[:, None, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = _nanmean(np.where(denom > 0, 2 * inter / denom, np.nan))  # (M, K)
    if np.all(np.isnan(dice)):
        nan = float("nan")
        return SetDiagnosis(nan, nan, nan, nan, 0, **spread)
    m, k = np.unravel_index(np.nanargmax(dice), dice.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = _nanmean(np.where(psize[:, m, k] > 0, inter[:, m, k] / psize[:, m, k], np.nan))
        recall = _nanmean(np.where(tsize > 0, inter[:, m, k] / tsize, np.nan))
        members = inter.sum(axis=0) >= inside * np.maximum(psize.sum(axis=0), 1)  # (M, K), set-wide
        members &= psize.sum(axis=0) > 0
        u_inter = (inter * members).sum(axis=2)  # (S, M)
        u_size = (psize * members).sum(axis=2)
        u_den = u_size + tsize[:, None]
        union = _nanmean(np.where(u_den > 0, 2 * u_inter / u_den, np.nan))  # (M,)
    union = np.where(members.any(axis=1), union, np.nan)
    best_single = float(dice[m, k])
    if np.all(np.isnan(union)) or np.nanmax(union) <= best_single:
        return SetDiagnosis(best_single, best_single, float(precision), float(recall), 1, **spread)
    mu = int(np.nanargmax(union))
    return SetDiagnosis(
        best_single, float(union[mu]), float(precision), float(recall), int(members[mu].sum()), **spread
    )
