"""pancakes-eval: metrics for multi-protocol, set-consistent segmentation.

numpy + scipy only; importing this package never imports torch (tensors are accepted by duck
typing).

The public names load lazily (PEP 562): a reader of label files (``pancakes_eval.io``) does not pay
for scipy.stats (0.7 s) that only the bootstrap intervals need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pancakes_eval.__about__ import __version__

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load on first use
    from pancakes_eval.accumulate import SetMetric
    from pancakes_eval.agreement import compute_nmi
    from pancakes_eval.diagnosis import SetDiagnosis, compute_set_diagnosis
    from pancakes_eval.metrics import (
        compute_assd,
        compute_dice,
        compute_hausdorff,
        compute_hd95,
        compute_iou,
        distances_to_reference,
        surface_distances,
    )
    from pancakes_eval.set_metrics import (
        SetScore,
        candidate_overlaps,
        compute_set_dice,
        compute_set_hd95,
        compute_set_iou,
        to_label_maps,
    )
    from pancakes_eval.stats import ConfidenceInterval, PairedComparison, bootstrap_ci, paired_comparison

# public name → module
_LAZY = {
    "SetMetric": "pancakes_eval.accumulate",
    "compute_nmi": "pancakes_eval.agreement",
    "SetDiagnosis": "pancakes_eval.diagnosis",
    "compute_set_diagnosis": "pancakes_eval.diagnosis",
    "compute_assd": "pancakes_eval.metrics",
    "compute_dice": "pancakes_eval.metrics",
    "compute_hausdorff": "pancakes_eval.metrics",
    "compute_hd95": "pancakes_eval.metrics",
    "compute_iou": "pancakes_eval.metrics",
    "distances_to_reference": "pancakes_eval.metrics",
    "surface_distances": "pancakes_eval.metrics",
    "SetScore": "pancakes_eval.set_metrics",
    "candidate_overlaps": "pancakes_eval.set_metrics",
    "compute_set_dice": "pancakes_eval.set_metrics",
    "compute_set_hd95": "pancakes_eval.set_metrics",
    "compute_set_iou": "pancakes_eval.set_metrics",
    "to_label_maps": "pancakes_eval.set_metrics",
    "ConfidenceInterval": "pancakes_eval.stats",
    "PairedComparison": "pancakes_eval.stats",
    "bootstrap_ci": "pancakes_eval.stats",
    "paired_comparison": "pancakes_eval.stats",
}

__all__ = [
    "ConfidenceInterval",
    "PairedComparison",
    "SetDiagnosis",
    "SetMetric",
    "SetScore",
    "__version__",
    "bootstrap_ci",
    "candidate_overlaps",
    "compute_assd",
    "compute_dice",
    "compute_hausdorff",
    "compute_hd95",
    "compute_iou",
    "compute_nmi",
    "compute_set_diagnosis",
    "compute_set_dice",
    "compute_set_hd95",
    "compute_set_iou",
    "distances_to_reference",
    "paired_comparison",
    "surface_distances",
    "to_label_maps",
]


def __getattr__(name: str) -> Any:
    """Load a public name on first use (see the module docstring)."""
    if name not in _LAZY:
        raise AttributeError(f"module 'pancakes_eval' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
