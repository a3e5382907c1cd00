"""Scoring a model on family sets — the one home of "predict the dev sets, score the best
candidate", used by validation during training, ``pancakes evaluate``, fine-tuning's before/after
scores and the annotation evidence.

Family sets are the batches of :func:`~pancakes_model.training.devset.family_sets`: images
(1, S, 1, H, W) and targets (1, 1, S, 1, H, W).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from pancakes_eval import compute_nmi, compute_set_dice
from pancakes_model.network import Pancakes
from pancakes_model.training.devset import DevFamily, family_sets

__all__ = ["family_scores", "predict_label_grid", "predict_labels", "predicted_sets", "set_arrays", "validate"]


def set_arrays(batch: dict) -> tuple[np.ndarray, np.ndarray]:
    """A family-sets batch → images (S, H, W) float32 and its binary target (S, H, W)."""
    return batch["images"][0, :, 0].numpy(), batch["targets"][0, 0, :, 0].numpy() > 0.5


@torch.inference_mode()
def predict_labels(model: Pancakes, images: np.ndarray, M: int, K: int) -> np.ndarray:
    """images (S, H, W) in [0, 1] on the model grid → label maps (S, M, H, W)."""
    device = next(model.parameters()).device
    x = torch.from_numpy(np.ascontiguousarray(images))[None, :, None].float().to(device)
    return model.predict_labels(x, M, K)[0].cpu().numpy()


@torch.inference_mode()
def predict_label_grid(
    model: Pancakes, images: np.ndarray, shapes: Iterable[tuple[int, int]]
) -> dict[tuple[int, int], np.ndarray]:
    """images (S, H, W) → {(M, K): label maps (S, M, H, W)}, equal to :func:`predict_labels` per
    (M, K) but with one featurizer pass for all of them."""
    device = next(model.parameters()).device
    x = torch.from_numpy(np.ascontiguousarray(images))[None, :, None].float().to(device)
    q = model.queries(x)
    return {(m, k): model.candidates(q, m, k).labels().long().cpu().numpy() for m, k in shapes}


def predicted_sets(model: Pancakes, sets: Iterable[dict], M: int, K: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(label maps (S, M, H, W), target (S, H, W)) of every set."""
    for b in sets:
        images, y = set_arrays(b)
        yield predict_labels(model, images, M, K), y


def family_scores(
    model: Pancakes, families: Sequence[DevFamily], *, s_of, n: int, seed: int, store: str | Path, M: int = 8,
    K: int = 20,
) -> dict[str, float]:  # fmt: skip
    """Mean Set Dice per family over ``n`` sets of S = ``s_of(family)`` images."""
    out = {}
    for fam in families:
        sets = family_sets(fam, s=s_of(fam), n=n, seed=seed, store=store)
        out[fam.name] = float(
            np.mean([compute_set_dice(lab, y, num_labels=K).score for lab, y in predicted_sets(model, sets, M, K)])
        )
    return out


def validate(model: Pancakes, val_sets: dict[str, list[dict]], *, M: int, K: int, step: int) -> dict:
    """The validation row of a training run: Set Dice per dev family and their mean, with the
    collapse signals (labels used per protocol, agreement between protocols, winner histogram)."""
    was_training = model.training
    model.eval()
    per: dict[str, float] = {}
    used, agree, winners = [], [], np.zeros(M)
    for name, sets in val_sets.items():
        scores = []
        for lab, y in predicted_sets(model, sets, M, K):
            res = compute_set_dice(lab, y, num_labels=K)
            scores.append(res.score)
            winners[res.protocol] += 1
            used += [len(np.unique(lab[s, m])) for s in range(lab.shape[0]) for m in range(lab.shape[1])]
            agree += [compute_nmi(lab[0, i], lab[0, j]) for i in range(M) for j in range(i + 1, M)]
        per[name] = float(np.mean(scores))
    model.train(was_training)
    return {
        "kind": "val",
        "step": step,
        "val_set_dice": float(np.mean(list(per.values()))) if per else float("nan"),
        **{f"val_{k}": s for k, s in per.items()},
        "labels_used_per_protocol": float(np.mean(used)) if used else 0.0,
        "protocol_agreement_nmi": float(np.mean(agree)) if agree else 0.0,
        "winner_protocol_hist": (winners / max(winners.sum(), 1)).round(3).tolist(),
    }
