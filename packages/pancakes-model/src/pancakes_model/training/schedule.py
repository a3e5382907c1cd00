"""The learning-rate schedule (linear warm-up, cosine decay to a floor) and the size curriculum."""

from __future__ import annotations

import math

import torch

from pancakes_model.training.config import TrainSection

__all__ = ["lr_factor", "make_scheduler", "size_at"]


def lr_factor(step: int, t: TrainSection) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based): (step + 1) / warmup during the
    warm-up, 1 until ``decay_start`` (when it is past the warm-up), then a cosine from 1 down to
    ``min_lr_ratio`` at ``steps``."""
    if step < t.warmup:
        return (step + 1) / t.warmup
    start = max(t.warmup, t.decay_start)
    if step < start:
        return 1.0
    progress = (step - start) / max(1, t.steps - start)
    return t.min_lr_ratio + (1 - t.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def make_scheduler(opt: torch.optim.Optimizer, t: TrainSection) -> torch.optim.lr_scheduler.LambdaLR:
    """``torch.optim.lr_scheduler.LambdaLR`` over :func:`lr_factor` (its state is checkpointed)."""
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(step, t))


def size_at(step: int, t: TrainSection) -> int:
    """Image side at ``step``: the first curriculum entry whose fraction of the run is not reached."""
    for frac, size in t.curriculum:
        if step < frac * t.steps:
            return int(size)
    return int(t.curriculum[-1][1]) if t.curriculum else 128
