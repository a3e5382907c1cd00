"""Choosing the protocol from annotated examples: rank every candidate against a person's mask.

A candidate is one protocol m with one label k — or a union of labels of that protocol, since the
wanted structure may be split over two or three. The union rule keeps a label absent from the
example from flooding the other images: a label joins only if ≥ 50 % of its area in the
example(s) lies inside the mask and it raises the Dice by ≥ 0.01; at most 3 labels; ties go to
fewer labels, then to the lower (m, k). With several examples a candidate's score is its mean Dice
over them. A multi-label mask (several structures) is matched label by label to one protocol
(Hungarian assignment on Dice). A best score below ``WARN_BELOW`` is reported as a warning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from pancakes_eval import candidate_overlaps
from pancakes_model.inference.predict import segment
from pancakes_model.network import Pancakes

__all__ = ["INSIDE", "MAX_UNION", "MIN_GAIN", "WARN_BELOW", "Candidate", "MatchResult", "rank_candidates"]

INSIDE = 0.5  # share of a label's example area that must lie inside the mask to join a union
MIN_GAIN = 0.01  # Dice a label must add to join
MAX_UNION = 3
WARN_BELOW = 0.5  # "no candidate matches your example well; try larger M or K"


@dataclass(frozen=True)
class Candidate:
    """One structure of one protocol: labels ``labels`` of protocol ``protocol``.

    Attributes:
        protocol: m.
        labels: the labels whose union is the structure (one, or up to three).
        score: mean Dice over the examples.
        structure: for a multi-label mask, which mask value this candidate stands for (0 otherwise).
    """

    protocol: int
    labels: tuple[int, ...]
    score: float
    structure: int = 0


@dataclass
class MatchResult:
    """What ``pancakes match`` found.

    Attributes:
        protocol: the chosen protocol m.
        assignment: mask value → labels of protocol m (one entry for a binary mask, value 1).
        score: mean Dice over the examples (mean over structures for a multi-label mask).
        ranking: the best candidates, best first.
        masks: per input, the chosen structure(s) on its grid: uint8 (0/1, or the mask's values).
        warning: set when ``score`` < ``WARN_BELOW``.
    """

    protocol: int
    assignment: dict[int, tuple[int, ...]]
    score: float
    ranking: list[Candidate]
    masks: list[np.ndarray] = field(default_factory=list)
    warning: str = ""

    def apply(self, labels: np.ndarray) -> np.ndarray:
        """(M, ...) label maps of one input → its mask (uint8) under this choice."""
        out = np.zeros(labels.shape[1:], np.uint8 if max(self.assignment) < 256 else np.uint16)
        for value, ks in self.assignment.items():
            out[np.isin(labels[self.protocol], ks)] = value
        return out


def _dice_table(labels: Sequence[np.ndarray], masks: Sequence[np.ndarray], K: int) -> tuple[np.ndarray, ...]:
    """Per example, protocol and label: intersection with the mask and label area (E, M, K), and the
    mask sizes (E,) — pancakes-eval's candidate counts, example by example (their shapes differ)."""
    counts = [candidate_overlaps(lab[None], mask[None], num_labels=K) for lab, mask in zip(labels, masks)]
    inter = np.concatenate([c[0] for c in counts]).astype(np.float64)
    area = np.concatenate([c[1] for c in counts]).astype(np.float64)
    return inter, area, np.concatenate([c[2] for c in counts]).astype(np.float64)


def _union_dice(inter, area, sizes, m: int, ks) -> float:
    i = inter[:, m, list(ks)].sum(axis=1)
    a = area[:, m, list(ks)].sum(axis=1)
    return float(np.mean(2 * i / np.maximum(a + sizes, 1e-9)))


def _best_union(inter, area, sizes, m: int, K: int) -> Candidate:
    """Greedy union for protocol m under the union rule (module docstring)."""
    singles = [(_union_dice(inter, area, sizes, m, (k,)), k) for k in range(K) if area[:, m, k].sum() > 0]
    if not singles:
        return Candidate(m, (0,), 0.0)
    score, first = max(singles, key=lambda t: (t[0], -t[1]))
    chosen = [first]
    inside_share = inter[:, m].sum(axis=0) / np.maximum(area[:, m].sum(axis=0), 1e-9)
    while len(chosen) < MAX_UNION:
        options = [
            (_union_dice(inter, area, sizes, m, (*chosen, k)), k)
            for k in range(K)
            if k not in chosen and area[:, m, k].sum() > 0 and inside_share[k] >= INSIDE
        ]
        if not options:
            break
        new, k = max(options, key=lambda t: (t[0], -t[1]))
        if new < score + MIN_GAIN:
            break
        chosen.append(k)
        score = new
    return Candidate(m, tuple(sorted(chosen)), score)


def rank_candidates(
    labels: Sequence[np.ndarray], masks: Sequence[np.ndarray], *, K: int, top: int = 10
) -> tuple[int, dict[int, tuple[int, ...]], float, list[Candidate]]:
    """Choose the protocol and labels that best match the example masks.

    Args:
        labels: per example, (M, ...) label maps.
        masks: per example, an integer mask of the same shape (0 = background; one value = a binary
            mask, several values = several structures, matched label by label).
        K: labels per protocol.
        top: candidates kept in the ranking.

    Returns:
        (protocol, assignment value → labels, score, ranking).
    """
    values = sorted({int(v) for mask in masks for v in np.unique(mask)} - {0})
    m_count = labels[0].shape[0]
    if len(values) == 1:
        inter, area, sizes = _dice_table(labels, [mask != 0 for mask in masks], K)
        cands = [_best_union(inter, area, sizes, m, K) for m in range(m_count)]
        ranking = sorted(cands, key=lambda c: (-c.score, len(c.labels), c.protocol, c.labels))
        best = ranking[0]
        return best.protocol, {values[0]: best.labels}, best.score, ranking[:top]

    tables = [_dice_table(labels, [mask == v for mask in masks], K) for v in values]
    per_protocol = []
    for m in range(m_count):
        dice = np.array([[_union_dice(*t, m, (k,)) for k in range(K)] for t in tables])  # (V, K)
        rows, cols = linear_sum_assignment(-dice)
        cands = [Candidate(m, (int(k),), float(dice[r, k]), values[r]) for r, k in zip(rows, cols)]
        per_protocol.append((float(np.mean([c.score for c in cands])) if cands else 0.0, m, cands))
    score, m, cands = max(per_protocol, key=lambda t: (t[0], -t[1]))
    ranking = sorted((c for _, _, cs in per_protocol for c in cs), key=lambda c: (-c.score, c.protocol))
    return m, {c.structure: c.labels for c in cands}, score, ranking[:top]


def _as_list(x) -> list:
    return list(x) if isinstance(x, (list, tuple)) else [x]


def match(images, example, mask, M: int = 8, K: int = 20, *, model=None) -> MatchResult:
    """Python API: choose the candidate that matches ``mask`` on ``example`` and apply it to ``images``.

    Args:
        images: list of 2D arrays (the collection).
        example: one 2D array, or a list of them (several annotated examples).
        mask: its integer mask (or a list): 0 = background, one value for one structure, several
            values for several structures.
        M, K: protocols and labels per protocol.
        model: a loaded model (default: the shipped weights).

    Returns:
        :class:`MatchResult` with ``masks`` for ``images``.

    Raises:
        ValueError: an example and its mask of different shapes, or an empty mask.
    """
    examples, masks = _as_list(example), [np.asarray(m) for m in _as_list(mask)]
    if len(examples) != len(masks):
        raise ValueError(f"{len(examples)} example(s) but {len(masks)} mask(s)")
    for i, (ex, mk) in enumerate(zip(examples, masks)):
        if np.shape(ex)[:2] != mk.shape[:2] or mk.ndim != 2:
            raise ValueError(f"example {i} has shape {np.shape(ex)}, its mask {mk.shape}; they must match")
        if not mk.any():
            raise ValueError(f"mask {i} is empty: draw the structure to find")
    if model is None:
        model = Pancakes.from_pretrained()
    maps = segment([*examples, *_as_list(images)], M, K, model=model)
    protocol, assignment, score, ranking = rank_candidates(maps[: len(examples)], masks, K=K)
    result = MatchResult(protocol, assignment, score, ranking)
    result.masks = [result.apply(lab) for lab in maps[len(examples) :]]
    if score < WARN_BELOW:
        result.warning = f"no candidate matches your example well (best Dice {score:.2f}); try larger M or K"
    return result
