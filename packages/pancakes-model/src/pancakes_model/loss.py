"""Best-candidate set soft-Dice loss (paper eq. 5–6) and its appendix-D joint variant.

    L = mean_b  min_{m,k}  mean_s  (1 − softDice(p[b, s, m, k], y[b, s]))

Only the winning candidate (m, k) receives gradient, which lets every protocol specialise and keeps
the M candidates diverse; averaging over the set before the min forces label k of protocol m to
mean the same region in every image.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange

__all__ = [
    "LossResult",
    "candidate_dice_losses",
    "joint_set_dice_loss",
    "set_dice_loss",
    "set_soft_dice_loss",
    "winner_only_set_dice_loss",
]

EPS = 1e-5


@dataclass
class LossResult:
    """Loss value and which candidate won.

    Attributes:
        loss: scalar, mean over the batch of the winner's set loss.
        protocol: (B,) winning m per set.
        label: (B,) winning k per set, or (B, T) for the joint variant.
        table: (B, M, K) set-mean soft-Dice loss of every candidate (detached).
    """

    loss: torch.Tensor
    protocol: torch.Tensor
    label: torch.Tensor
    table: torch.Tensor


def _flat_targets(targets: torch.Tensor, b: int, s: int) -> torch.Tensor:
    if targets.ndim == 5:  # (B, S, 1, H, W)
        if targets.shape[2] != 1:
            raise ValueError(f"targets must be (B, S, 1, H, W), got {tuple(targets.shape)}")
        targets = targets[:, :, 0]
    if targets.ndim != 4 or targets.shape[:2] != (b, s):
        raise ValueError(
            f"targets (B, S, [1,] H, W) do not match predictions with B={b}, S={s}: got {tuple(targets.shape)}"
        )
    return rearrange(targets.to(torch.float32), "B S H W -> B S (H W)")


def candidate_dice_losses(probs: torch.Tensor, targets: torch.Tensor, *, eps: float = EPS) -> torch.Tensor:
    """Soft-Dice loss of every candidate, averaged over the set.

    Args:
        probs: (B, S, M, K, H, W) probabilities.
        targets: (B, S, 1, H, W) or (B, S, H, W) binary targets (may be empty in some images).
        eps: smoothing added to numerator and denominator; an empty target with an empty
            prediction costs 0, with a non-empty prediction close to 1.

    Returns:
        (B, M, K) mean over s of 1 − (2Σpy + ε)/(Σp + Σy + ε).
    """
    b, s = probs.shape[:2]
    if probs.ndim != 6:
        raise ValueError(f"probs must be (B, S, M, K, H, W), got {tuple(probs.shape)}")
    y = _flat_targets(targets, b, s)
    p = rearrange(probs, "B S M K H W -> B S M K (H W)")
    inter = torch.einsum("bsmkp,bsp->bsmk", p, y)
    dice = (2 * inter + eps) / (p.sum(-1) + y.sum(-1)[:, :, None, None] + eps)
    return (1 - dice).mean(dim=1)


def _argmin_mk(table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    k = table.shape[-1]
    flat = table.flatten(1).argmin(dim=1)
    return flat // k, flat % k


def set_dice_loss(probs: torch.Tensor, targets: torch.Tensor, *, eps: float = EPS) -> LossResult:
    """Paper eq. 6 on precomputed probabilities (B, S, M, K, H, W); see module docstring."""
    table = candidate_dice_losses(probs, targets, eps=eps)
    m, k = _argmin_mk(table.detach())
    loss = table[torch.arange(table.shape[0]), m, k].mean()
    return LossResult(loss, m, k, table.detach())


def joint_set_dice_loss(probs: torch.Tensor, targets: torch.Tensor, *, eps: float = EPS) -> LossResult:
    """Appendix-D variant: two targets of one protocol must be matched by two labels of ONE protocol.

    L = mean_b min_m min_{k1 ≠ k2} ½ (d[m, k1, t1] + d[m, k2, t2])

    Args:
        probs: (B, S, M, K, H, W).
        targets: (T, B, S, 1, H, W) with T = 1 or 2 (T = 1 reduces to :func:`set_dice_loss`).
    """
    if targets.ndim != 6:
        raise ValueError(f"joint targets must be (T, B, S, 1, H, W), got {tuple(targets.shape)}")
    t = targets.shape[0]
    if t == 1:
        res = set_dice_loss(probs, targets[0], eps=eps)
        return LossResult(res.loss, res.protocol, res.label[:, None], res.table)
    if t != 2:
        raise ValueError(f"the joint loss supports T = 1 or 2 targets, got T={t}")
    d1 = candidate_dice_losses(probs, targets[0], eps=eps)  # (B, M, K)
    d2 = candidate_dice_losses(probs, targets[1], eps=eps)
    b, _m, k = d1.shape
    pair = (d1[:, :, :, None] + d2[:, :, None, :]) / 2  # (B, M, K1, K2)
    if k > 1:
        # Two different structures need two different labels.
        pair = pair + torch.eye(k, device=pair.device)[None, None] * 4.0
    flat = pair.detach().flatten(1).argmin(dim=1)
    mi, rest = flat // (k * k), flat % (k * k)
    k1, k2 = rest // k, rest % k
    loss = pair[torch.arange(b), mi, k1, k2].mean()
    return LossResult(loss, mi, torch.stack([k1, k2], dim=1), ((d1 + d2) / 2).detach())


def set_soft_dice_loss(probs: torch.Tensor, targets: torch.Tensor, *, eps: float = EPS) -> torch.Tensor:
    """Set-averaged soft-Dice loss of one map per set: probs (B, S, H, W), targets (B, S, [1,] H, W)
    → (B,) mean over s of 1 − (2Σpy + ε)/(Σp + Σy + ε)."""
    b, s = probs.shape[:2]
    y = _flat_targets(targets, b, s)
    p = rearrange(probs, "B S H W -> B S (H W)")
    dice = (2 * (p * y).sum(-1) + eps) / (p.sum(-1) + y.sum(-1) + eps)
    return (1 - dice).mean(dim=1)


def winner_only_set_dice_loss(
    model, images: torch.Tensor, targets: torch.Tensor, M: int, K: int, *, eps: float = EPS
) -> LossResult:
    """Same value and gradients as ``set_dice_loss(model(images, M, K), targets)``, cheaper.

    The min over (m, k) routes gradient through one protocol only, so the candidate table is
    computed without autograd, one protocol at a time (the (B, S, K, HW) block stays in cache
    instead of a (B, S, M, K, HW) tensor making a round trip through memory), and only the winning
    protocol's K maps are recomputed with autograd (softmax over K couples the K labels of that
    protocol, so all K are needed). Both steps are the network's factored logits
    (:meth:`Pancakes.factors`) and this module's pure Dice functions.

    Args:
        model: a :class:`~pancakes_model.Pancakes`.
        images: (B, S, C, H, W).
        targets: (B, S, 1, H, W) binary.
    """
    b, s = images.shape[:2]
    factors = model.factors(images, M, K)  # q with grad; keys recomputed below for the winners
    with torch.no_grad():
        frozen = factors.detach()
        table = torch.stack(
            [
                candidate_dice_losses(rearrange(frozen.probs(m), "(B S) K H W -> B S 1 K H W", B=b), targets, eps=eps)[
                    :, 0
                ]
                for m in range(M)
            ],
            dim=1,
        )  # (B, M, K)
        m, k = _argmin_mk(table)
    per_image = m.repeat_interleave(s)  # set b's winning protocol for each of its S images
    probs_w = rearrange(factors.probs(per_image), "(B S) K H W -> B S K H W", B=b)
    chosen = probs_w[torch.arange(b), :, k]  # (B, S, H, W)
    loss = set_soft_dice_loss(chosen, targets, eps=eps).mean()
    return LossResult(loss, m, k, table)
