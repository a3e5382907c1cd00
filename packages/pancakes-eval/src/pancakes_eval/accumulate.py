"""Accumulating set metric, in the style of MONAI's ``Cumulative`` metrics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pancakes_eval.set_metrics import (
    SetScore,
    compute_set_dice,
    compute_set_hd95,
    compute_set_iou,
)
from pancakes_eval.stats import ConfidenceInterval, bootstrap_ci

__all__ = ["SetMetric"]

_FUNCS = {"dice": compute_set_dice, "iou": compute_set_iou, "hd95": compute_set_hd95}


class SetMetric:
    """Collect Set scores over many sets, then aggregate with a bootstrap interval.

    Example:
        >>> metric = SetMetric("dice")
        >>> for pred, y in sets:          # pred (S, M, H, W), y (S, H, W)
        ...     metric.update(pred, y)
        >>> metric.aggregate()            # ConfidenceInterval over sets

    Args:
        metric: ``"dice"``, ``"iou"`` or ``"hd95"``.
        num_labels: K passed to every call (inferred per set when ``None``).
        spacing: voxel spacing for ``"hd95"``.
    """

    def __init__(
        self,
        metric: str = "dice",
        *,
        num_labels: int | None = None,
        spacing: float | Sequence[float] | None = None,
    ) -> None:
        if metric not in _FUNCS:
            raise ValueError(f"metric must be one of {sorted(_FUNCS)}, got {metric!r}")
        self.metric = metric
        self.num_labels = num_labels
        self.spacing = spacing
        self.results: list[SetScore] = []

    def update(self, pred: Any, y: Any) -> SetScore:
        """Score one set (shapes as :func:`compute_set_dice`) and remember the result."""
        kwargs: dict[str, Any] = {"num_labels": self.num_labels}
        if self.metric == "hd95":
            kwargs["spacing"] = self.spacing
        result = _FUNCS[self.metric](pred, y, **kwargs)
        self.results.append(result)
        return result

    @property
    def scores(self) -> np.ndarray:
        """Set scores collected so far, shape ``(N,)``."""
        return np.asarray([r.score for r in self.results], dtype=np.float64)

    def aggregate(self, *, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> ConfidenceInterval:
        """Mean Set score over the finite sets with a bootstrap interval.

        Sets with an undefined (NaN) or infinite score are left out; their count is in
        :attr:`n_undefined`.
        """
        s = self.scores
        finite = s[np.isfinite(s)]
        if finite.size == 0:
            raise ValueError(f"no finite {self.metric} score to aggregate ({s.size} sets collected)")
        return bootstrap_ci(finite, n_resamples=n_resamples, confidence=confidence, seed=seed)

    @property
    def n_undefined(self) -> int:
        return int(np.count_nonzero(~np.isfinite(self.scores)))

    def reset(self) -> None:
        self.results.clear()
