"""The quality rules and their thresholds, in one place: the report formats their verdicts, the
evaluation, fine-tuning and the candidate table apply them.

- **Margin** (a dev family's quality bar): Pancakes − the better baseline at S = 3, paired over the
  same sets, must be ≥ ``MARGIN`` with its 95 % CI lower bound above 0.
- **Consistency gap**: each image scored alone − the whole set, paired, at the largest S, within ``GAP``.
- **Set size**: Pancakes' Set Dice at S = 5 within ``SIZE_DRIFT`` of its S = 1 (a bigger set may
  not cost much more than that).
- **Stage rule** (ship a continued model or not): on every dev family the paired new − current CI
  lower bound above ``NON_INFERIOR`` (over all of the family's sets), and the pooled difference's
  CI lower bound above 0 (over the first ``[dev] sets`` sets of every family: a family scored on
  more sets for the sake of its own bound does not weigh more in the pooled mean).
- **Forgetting** (fine-tuning): the pooled dev Set Dice may drop by at most ``FORGETTING``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pancakes_eval import paired_comparison

__all__ = [
    "FORGETTING",
    "GAP",
    "MARGIN",
    "NON_INFERIOR",
    "SIZE_DRIFT",
    "compare_models",
    "forgets",
    "meets_gap",
    "meets_margin",
    "meets_size_drift",
    "paired",
]

MARGIN = 0.02
GAP = 0.03
NON_INFERIOR = -0.01
FORGETTING = 0.02
SIZE_DRIFT = 0.03


def paired(a: Sequence[float], b: Sequence[float], seed: int) -> dict:
    """Paired a − b over the same sets: mean and 95 % bootstrap CI (pancakes-eval)."""
    pc = paired_comparison(np.asarray(a), np.asarray(b), seed=seed)
    return {"mean": pc.mean_difference, "low": pc.ci.low, "high": pc.ci.high, "n": pc.n}


def meets_margin(margin: dict) -> bool:
    return margin["mean"] >= MARGIN and margin["low"] > 0


def meets_gap(gap: dict) -> bool:
    return gap["mean"] <= GAP


def meets_size_drift(s1: float, s5: float) -> bool:
    return abs(s5 - s1) <= SIZE_DRIFT


def forgets(drop: float) -> bool:
    return drop > FORGETTING


def compare_models(new: dict, old: dict, *, s: str = "3", seed: int = 0) -> dict:
    """The stage rule on two evaluations of the same dev sets: paired new − old per family and
    pooled; ``accept`` when every family passes non-inferiority and the pooled CI is above 0.

    The pooled difference takes the first ``new["n_sets"]`` sets of each family (the dev config's
    ``sets``; sets are drawn by index, so they are the same sets in both), every family with equal
    weight; each family's own bound uses all of its sets."""
    per, pooled_new, pooled_old = {}, [], []
    first = new.get("n_sets")
    for fam, by_s in new["sources"].items():
        a = by_s[s]["pancakes"]["set_dice"]["values"]
        b = old["sources"][fam][s]["pancakes"]["set_dice"]["values"]
        per[fam] = paired(a, b, seed)
        pooled_new += a[:first]
        pooled_old += b[:first]
    pooled = paired(pooled_new, pooled_old, seed)
    accept = all(v["low"] > NON_INFERIOR for v in per.values()) and pooled["low"] > 0
    return {"S": int(s), "families": per, "pooled": pooled, "accept": bool(accept)}
