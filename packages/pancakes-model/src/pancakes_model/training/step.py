"""One training step: the per-step draws, the batch on the device at the step's size, the
winner-only set loss, the update — and the arithmetic settings that make it fast on a CPU.

Measured on 2 AVX-512 cores (benchmarks/bench_train.py): the featurizer in chunks of 4 images,
the candidate table from the factored logits, bfloat16 featurizer arithmetic where the CPU has it
natively and ``torch.compile`` of the per-chunk path together halve the step of the default recipe.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from pancakes_model.loss import winner_only_joint_set_dice_loss, winner_only_set_dice_loss
from pancakes_model.network import Pancakes

__all__ = ["Objective", "draw_mk", "featurizer_dtype", "native_bf16", "resize", "train_step"]


class Objective(torch.nn.Module):
    """The training loss as a module (so DistributedDataParallel can wrap it): images (B, S, 1, H, W)
    and targets (T, B, S, 1, H, W) → the winner-only set loss (T = 1) or the joint one (T = 2, its
    share ``joint_weight``, the rest the first target's winner-only loss)."""

    def __init__(self, model: Pancakes, *, joint_weight: float = 1.0) -> None:
        super().__init__()
        self.model = model
        self.joint_weight = joint_weight

    def forward(self, images: torch.Tensor, targets: torch.Tensor, M: int, K: int):
        if targets.shape[0] == 1:
            return winner_only_set_dice_loss(self.model, images, targets[0], M, K)
        return winner_only_joint_set_dice_loss(self.model, images, targets, M, K, joint_weight=self.joint_weight)


def draw_mk(seed: int, step: int, m_range: tuple[int, int], k_range: tuple[int, int]) -> tuple[int, int]:
    """M and K of step ``step``: a pure function of (seed, step), so a resumed run draws the same."""
    rng = np.random.default_rng([seed, 7, step])
    (m0, m1), (k0, k1) = m_range, k_range
    return int(rng.integers(m0, m1 + 1)), int(rng.integers(k0, k1 + 1))


def resize(images: torch.Tensor, targets: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, S, 1, H, W) images and (T, B, S, 1, H, W) targets → size × size (area / threshold)."""
    h = images.shape[-1]
    if h == size:
        return images, targets
    b, s = images.shape[:2]
    img = F.interpolate(images.flatten(0, 1), size=(size, size), mode="area").view(b, s, 1, size, size)
    tgt = F.interpolate(targets.flatten(0, 2), size=(size, size), mode="area")
    tgt = (tgt > 0.5).float().view(*targets.shape[:3], 1, size, size)
    return img, tgt


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), read from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return bool(set(line.split(":", 1)[1].split()) & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def featurizer_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """``train.precision`` → the featurizer's autocast dtype (None: float32).

    "auto" takes bfloat16 only on a CPU with native bf16: there the step's convolutions (forward and
    backward, channels_last) run 2× faster; on AVX2 bf16 convolutions are ~15× slower, and GPUs keep
    float32 until measured. The sampler, the candidate table and the loss stay float32 in every case.
    """
    if precision == "bf16" or (precision == "auto" and device.type == "cpu" and native_bf16()):
        return torch.bfloat16
    return None


def train_step(
    objective: torch.nn.Module,
    model: Pancakes,
    opt: torch.optim.Optimizer,
    scheduler,
    batch: dict,
    *,
    step: int,
    mk: tuple[int, int],
    size: int,
    clip: float,
    device: torch.device,
    augmentation=None,
) -> dict:
    """Run step ``step`` on ``batch``; returns its log row (the loss and what won)."""
    m, k = mk
    images = batch["images"].to(device, non_blocking=True)
    targets = batch["targets"].to(device, non_blocking=True)
    if "augment" in batch:  # data.augment_on = "device": parameters drawn by the workers
        images, targets = augmentation.apply_batch(images, targets, batch["augment"])
    images, targets = resize(images, targets, size)
    opt.zero_grad(set_to_none=True)
    res = objective(images, targets, m, k)
    res.loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    lr = opt.param_groups[0]["lr"]
    opt.step()
    scheduler.step()
    return {
        "kind": "train",
        "step": step + 1,
        "loss": float(res.loss.detach()),
        "lr": lr,
        "M": m,
        "K": k,
        "S": int(images.shape[1]),
        "size": size,
        "grad_norm": float(grad_norm),
        "winner_m_frac": (res.protocol.float() / max(m - 1, 1)).mean().item(),
        "winner_k": res.label.float().mean().item(),
    }
