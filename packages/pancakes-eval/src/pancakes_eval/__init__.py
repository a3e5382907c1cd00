"""pancakes-eval: metrics for multi-protocol, set-consistent segmentation.

numpy + scipy only; importing this package never imports torch (tensors are accepted by duck
typing).
"""

from __future__ import annotations

from pancakes_eval.__about__ import __version__
from pancakes_eval.accumulate import SetMetric
from pancakes_eval.agreement import compute_nmi
from pancakes_eval.diagnosis import SetDiagnosis, compute_set_diagnosis
from pancakes_eval.metrics import (
    compute_assd,
    compute_dice,
    compute_hausdorff,
    compute_hd95,
    compute_iou,
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
from pancakes_eval.stats import (
    ConfidenceInterval,
    PairedComparison,
    bootstrap_ci,
    paired_comparison,
)

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
    "paired_comparison",
    "surface_distances",
    "to_label_maps",
]
