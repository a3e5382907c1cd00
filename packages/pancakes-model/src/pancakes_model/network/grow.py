"""Growing trained weights wider without changing what they compute (Net2WiderNet, Chen et al.,
ICLR 2016).

Why: every CPU stage since the set-context branch traded one dev family against another (the
nuclei against the fine parcels and the mosaic), as a network at its capacity would, and
training a wider one from scratch costs more CPU time than the project has. Widened this way the
model starts as the shipped function and training only adds.

Each new channel j of the UNet (``features`` → ``wider``) copies an existing channel ``src[j]`` in
every layer: its incoming weights, bias and PReLU slope, so its activation equals the original's
everywhere (max-pooling, the skip concatenation and the set context's FiLM are per channel). Every
layer that reads the widened channels splits the original's outgoing weight among it and its
copies with fractions that sum to one, so the sum it computes is unchanged. Unequal fractions
alone would not let a copy learn anything of its own under AdamW: its gradient is the original's
times a constant, which Adam's per-parameter scaling removes, and the pair would move in lockstep
forever. So the copies' incoming convolution weights get a little noise (``noise`` × the layer's
weight standard deviation, seeded): the function moves by about that much, and the copies diverge.
"""

from __future__ import annotations

import re

import torch

__all__ = ["widen_state"]

# (pattern, axes that hold the UNet's channels as outputs (copied), as inputs (split)); the
# transposed convolutions store (in, out, kh, kw), everything else (out, in, ...)
_RULES: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...] = (
    (r"featurizer\.down\.0\.0\.weight", (0,), ()),  # reads the image
    (r"featurizer\.up\.\d+\.weight", (1,), (0,)),
    (r"featurizer\.decode\.\d+\.0\.weight", (0,), (1,)),  # reads [up(x), skip]: 2 blocks of channels
    (r"featurizer\..*\.weight", (0,), (1,)),  # convolutions (4-D) and PReLU slopes (1-D)
    (r"featurizer\..*\.bias", (0,), ()),
    (r"sampler\.query\.0\.weight", (), (1,)),  # reads φ
    (r"context\.mlp\.0\.weight", (), (1,)),  # reads [mean, std(, own mean − mean, own std − std)]
    (r"context\.mlp\.2\.(weight|bias)", (0,), ()),  # writes (L + 1) × (γ, β) × C
)


def _plan(features: int, wider: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Source channel of each of ``wider`` channels and the fraction of its source's outgoing weight."""
    extra = torch.randint(features, (wider - features,), generator=generator)
    src = torch.cat([torch.arange(features), extra])
    share = torch.empty(wider, dtype=torch.float64).uniform_(0.5, 1.5, generator=generator)
    total = torch.zeros(features, dtype=torch.float64).index_add_(0, src, share)
    return src, share / total[src]


def _widen_axis(
    t: torch.Tensor, axis: int, src: torch.Tensor, frac: torch.Tensor | None, features: int
) -> torch.Tensor:
    """``t`` with ``axis`` — whole blocks of ``features`` channels — widened block by block: each
    block's channels copied by ``src``, and scaled by ``frac`` where the axis reads them."""
    parts = []
    for b in range(t.shape[axis] // features):
        block = t.narrow(axis, b * features, features).index_select(axis, src)
        if frac is not None:
            shape = [1] * t.ndim
            shape[axis] = src.numel()
            block = block * frac.to(t.dtype).view(shape)
        parts.append(block)
    return torch.cat(parts, dim=axis)


def widen_state(
    state: dict[str, torch.Tensor],
    *,
    features: int,
    wider: int,
    noise: float = 0.01,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """A state dict of a :class:`~pancakes_model.network.model.Pancakes` with ``features`` UNet
    channels → the same function with ``wider`` channels.

    Args:
        state: the model's ``state_dict()`` (not modified).
        features: its UNet width (``config.features``).
        wider: the new width, > ``features``.
        noise: standard deviation of the noise on the copies' incoming convolution weights,
            relative to each layer's (0: exactly the same function).
        generator: draws which channels are copied and the split fractions (seed it: the same seed
            gives the same weights).

    Returns:
        The widened state dict (new tensors), to load into a model of ``features = wider``.

    Raises:
        ValueError: ``wider ≤ features``, or a tensor whose channel axis is not a multiple of
            ``features`` (not a state dict of that width).
    """
    if wider <= features:
        raise ValueError(f"a model can only grow wider: {features} → {wider} features")
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    src, frac = _plan(features, wider, gen)
    out = {}
    for key, tensor in state.items():
        rule = next((r for r in _RULES if re.fullmatch(r[0], key)), None)
        t = tensor
        if rule is not None:
            copy_axes, split_axes = rule[1], rule[2]
            for axis, split in [(a, False) for a in copy_axes] + [(a, True) for a in split_axes]:
                if axis >= t.ndim:
                    continue  # a PReLU slope or bias has one axis
                if t.shape[axis] % features:
                    raise ValueError(f"{key}: axis {axis} of {tuple(t.shape)} is not a multiple of {features} channels")
                t = _widen_axis(t, axis, src, frac if split else None, features)
            if noise and t.ndim == 4 and copy_axes:  # the copies' incoming convolution weights
                axis = copy_axes[0]
                new = t.narrow(axis, features, wider - features)
                jitter = torch.randn(new.shape, generator=gen, dtype=torch.float64) * (noise * tensor.double().std())
                new += jitter.to(t.dtype)  # a view: writes into t
        out[key] = t.clone() if t is tensor else t
    return out
