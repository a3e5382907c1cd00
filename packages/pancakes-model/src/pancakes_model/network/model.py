"""The Pancakes network: featurizer f, protocol/label embeddings e, sampler h.

Reads top-down: the pieces (``unet``, ``embedding``, ``sampler``) → the model → factory.
Shapes use the shared axis letters: B batch, S set, M protocols, K labels, C channels, H, W.

    images (B, S, 1, H, W) ──f──▶ φ (B·S, C, H, W) ──┐
                                                    ├─h─▶ logits (B, S, M, K, H, W) ─softmax_K─▶ probs
    (M, K) ──e──▶ v (M, K, 2J) ─────────────────────┘

With ``config.set_context`` the images of a set also see one summary of the set
(:class:`~pancakes_model.network.context.SetContext`), which modulates f's expanding path.

Everything that depends on φ is computed once per image and everything that depends on (m, k)
once per candidate (:class:`~pancakes_model.network.sampler.LogitFactors`); their combination is
one batched product, so the per-(m, k) cost is a dot product per pixel.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from einops import rearrange
from torch import nn

from pancakes_data.geometry import Preprocess
from pancakes_model.network.config import PancakesConfig
from pancakes_model.network.context import SetContext
from pancakes_model.network.embedding import ProtocolEmbedding, check_mk
from pancakes_model.network.grow import widen_state
from pancakes_model.network.sampler import LogitFactors, Sampler
from pancakes_model.network.unet import UNet
from pancakes_model.network.weights import load_weights, save_weights

__all__ = ["Pancakes", "pancakes"]

MEMORY_FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
CPU_CHUNK = 4


class Pancakes(nn.Module):
    """Multi-protocol, set-consistent segmentation.

    ``model(images, M=8, K=20)`` returns probabilities (B, S, M, K, H, W); softmax over K makes
    every protocol m a full partition of every image. Deterministic: no noise is sampled.
    Consistency comes from the shared (m, k) embeddings and, with ``config.set_context``, from a
    summary of the set that every image's features see (:meth:`set_summary`); without it the
    images of a set do not interact.

    Args:
        config: architecture; keyword arguments override its fields.
    """

    def __init__(self, config: PancakesConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        cfg = PancakesConfig(**{**asdict(config or PancakesConfig()), **overrides})
        self.config = cfg
        self.featurizer = UNet(in_channels=cfg.in_channels, features=cfg.features, levels=cfg.levels)
        self.embedding = ProtocolEmbedding(dims=cfg.embed_dims)
        self.sampler = Sampler(
            features=cfg.features,
            embed_dims=2 * cfg.embed_dims,
            dims=cfg.sampler_dims,
            hidden=cfg.sampler_hidden,
            temperature=cfg.temperature,
            bias_bound=cfg.bias_bound,
        )
        self.context = (
            SetContext(
                features=cfg.features, hidden=cfg.set_context, levels=cfg.levels, per_image=cfg.context_per_image
            )
            if cfg.set_context
            else None
        )
        # channels_last: the layout mkldnn's convolutions are fastest in on CPUs (inference and the
        # bf16 training step); set_memory_format changes it
        self.memory_format = "channels_last"
        self.featurizer.to(memory_format=MEMORY_FORMATS["channels_last"])
        self.cpu_chunk = CPU_CHUNK  # images per featurizer call on a CPU (0: all at once)
        # dtype the featurizer computes in under autocast (None: float32). A training setting:
        # inference keeps float32 (exact, reproducible label maps).
        self.featurizer_dtype: torch.dtype | None = None
        self._compiled: dict[str, Any] = {}  # set by compile_queries()
        self.preprocess = Preprocess()  # how inputs are prepared; the weights file carries it
        self.provenance: dict[str, Any] = {}

    def set_memory_format(self, name: str) -> Pancakes:
        """Memory layout of the featurizer: ``"channels_last"`` (the default) or ``"contiguous"``.

        An explicit setting, never a side effect of ``train()``/``eval()``. channels_last makes
        inference ~25 % faster on CPUs (benchmarks/bench_model.py) and the bf16 training step 1.4×
        faster; on AVX2-only CPUs the float32 training step measured ~20 % faster contiguous.
        Parameters keep their identity (optimizers stay valid).
        """
        if name not in MEMORY_FORMATS:
            raise ValueError(f"memory format must be one of {sorted(MEMORY_FORMATS)}, got {name!r}")
        if name != self.memory_format:
            self.featurizer.to(memory_format=MEMORY_FORMATS[name])
            self.memory_format = name
        return self

    # ---- input checks
    def check_images(self, images: torch.Tensor, *, finite: bool = True) -> None:
        """Raise ValueError unless ``images`` is a (B, S, C, H, W) tensor with H, W usable.

        ``finite`` also checks for NaN/inf, which waits for the device: done in eval mode only, so
        the training step (whose data the sampler checks) never syncs for it.
        """
        if not isinstance(images, torch.Tensor):
            raise ValueError(f"images must be a torch.Tensor, got {type(images).__name__}")
        if images.ndim != 5:
            raise ValueError(f"images must have shape (B, S, C, H, W), got {tuple(images.shape)}")
        b, s, c, h, w = images.shape
        if c != self.config.in_channels:
            raise ValueError(f"images have C={c} channels, the model expects {self.config.in_channels}")
        if b < 1 or s < 1:
            raise ValueError(f"empty batch or set: B={b}, S={s}")
        div = 2**self.config.levels
        if h % div or w % div or h == 0 or w == 0:
            raise ValueError(f"H and W must be positive multiples of {div}, got H={h}, W={w}")
        if finite and not torch.isfinite(images).all():
            raise ValueError("images contain NaN or inf")

    # ---- the pieces: features once per image, factors once per (M, K)
    def _chunks(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Images (N, C, H, W) split into the groups the featurizer runs on.

        On a CPU a few images at a time keep each layer's activations in cache: the training step's
        convolutions (forward and backward) measured 1.6× faster in groups of 4 than as one batch of
        16 at 128² (benchmarks/bench_train.py). Every image is computed independently, so the split
        changes nothing but the order of the weight-gradient sums. GPUs get the whole batch.
        """
        if x.device.type != "cpu" or self.cpu_chunk <= 0 or x.shape[0] <= self.cpu_chunk:
            return (x,)
        return x.split(self.cpu_chunk)

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        self.check_images(images, finite=not self.training)
        x = rearrange(images, "B S C H W -> (B S) C H W")
        return x.contiguous(memory_format=MEMORY_FORMATS[self.memory_format])

    def _featurize(self, x: torch.Tensor) -> torch.Tensor:
        if self.featurizer_dtype is None:
            return self.featurizer(x)
        with torch.autocast(x.device.type, dtype=self.featurizer_dtype):
            phi = self.featurizer(x)
        return phi.float()

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, S, C, H, W) → φ (B·S, F, H, W)."""
        parts = [self._featurize(x) for x in self._chunks(self._prepare(images))]
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def _queries_chunk(self, x: torch.Tensor) -> torch.Tensor:
        return self.sampler.queries(self._featurize(x))

    def _contract_chunk(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if self.featurizer_dtype is None:
            return self.featurizer.contract(x)
        with torch.autocast(x.device.type, dtype=self.featurizer_dtype):
            return self.featurizer.contract(x)

    def _expand_chunk(
        self, bottleneck: torch.Tensor, skips: list[torch.Tensor], films: list[tuple[torch.Tensor, torch.Tensor]]
    ) -> torch.Tensor:
        if self.featurizer_dtype is None:
            return self.sampler.queries(self.featurizer.expand(bottleneck, skips, films))
        with torch.autocast(bottleneck.device.type, dtype=self.featurizer_dtype):
            phi = self.featurizer.expand(bottleneck, skips, films)
        return self.sampler.queries(phi.float())

    def compile_queries(self, **options: Any) -> Pancakes:
        """Run the per-chunk path (featurizer and query head) through ``torch.compile``.

        A training option: the training step's chunks always hold the same number of images, so
        one compiled graph (~1 min on 2 cores) serves the whole run and fuses the pointwise work
        around the convolutions (measured 1.35× on that path). Inference stays eager. With a
        set-context branch the contracting and expanding paths are compiled apart (the set's
        summary is taken between them).
        """
        if self.context is None:
            self._compiled = {"queries": torch.compile(self._queries_chunk, **options)}
        else:
            self._compiled = {
                "contract": torch.compile(self._contract_chunk, **options),
                "expand": torch.compile(self._expand_chunk, **options),
            }
        return self

    def _fn(self, name: str):
        compiled = self._compiled.get(name) if self.training else None
        return compiled or getattr(self, f"_{name}_chunk")

    def set_summary(self, images: torch.Tensor) -> torch.Tensor:
        """Per-image descriptions for the set context: images (B, S, C, H, W) → (B, S, 2C).

        A set's summary is the mean over its images (any subset order, any split into batches):
        pass ``summary.mean(1)`` — or the mean over a set streamed batch by batch — to
        :meth:`queries` as ``context``. Raises ValueError without a set-context branch.
        """
        if self.context is None:
            raise ValueError("this model has no set-context branch (config.set_context = 0)")
        b = images.shape[0] if isinstance(images, torch.Tensor) and images.ndim == 5 else 0
        parts = [SetContext.describe(self._fn("contract")(x)[0]) for x in self._chunks(self._prepare(images))]
        return rearrange(torch.cat(parts), "(B S) D -> B S D", B=b)

    def queries(self, images: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """images (B, S, C, H, W) → unit queries q (B·S, D, H, W) (featurizer and query head per chunk).

        Args:
            images: (B, S, C, H, W).
            context: (B, 2C) set summaries to use instead of the images' own (a set larger than
                ``images``, summarised by :meth:`set_summary`); only with a set-context branch.
        """
        chunks = self._chunks(self._prepare(images))
        if self.context is None:
            if context is not None:
                raise ValueError("context given, but this model has no set-context branch")
            parts = [self._fn("queries")(x) for x in chunks]
            return parts[0] if len(parts) == 1 else torch.cat(parts)
        b, s = images.shape[:2]
        contract, expand = self._fn("contract"), self._fn("expand")
        encoded = None
        if context is None:  # the set is the images given: contract them all, then summarise
            encoded = [contract(x) for x in chunks]
            described = torch.cat([SetContext.describe(bottleneck) for bottleneck, _ in encoded])
            context = rearrange(described, "(B S) D -> B S D", B=b).mean(1)
        if context.shape != (b, 2 * self.config.features):
            raise ValueError(f"context must have shape {(b, 2 * self.config.features)}, got {tuple(context.shape)}")
        context = context.to(images.device)
        if self.context.per_image:  # each image's own FiLM: its set's summary beside its own description
            films, per_image = None, context.repeat_interleave(s, dim=0)
        else:  # one FiLM per set, shared by its images
            films = [tuple(t.repeat_interleave(s, dim=0) for t in pair) for pair in self.context.films(context)]
        parts, start = [], 0
        for i, x in enumerate(chunks):
            n = x.shape[0]
            bottleneck, skips = encoded[i] if encoded is not None else contract(x)
            if films is None:
                mine = self.context.films(per_image[start : start + n], SetContext.describe(bottleneck))
            else:
                mine = [(g[start : start + n], t[start : start + n]) for g, t in films]
            parts.append(expand(bottleneck, skips, mine))
            start += n
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def _settled(self, grown: Pancakes) -> Pancakes:
        """``grown`` (a grown copy of this model) given this model's preprocessing, provenance,
        compute settings, device and mode."""
        grown.preprocess, grown.provenance = self.preprocess, dict(self.provenance)
        grown.featurizer_dtype, grown.cpu_chunk = self.featurizer_dtype, self.cpu_chunk
        grown.set_memory_format(self.memory_format)
        return grown.to(next(self.parameters()).device).train(self.training)

    def grow_set_context(self, hidden: int) -> Pancakes:
        """This model with a set-context branch of width ``hidden`` added, zero-initialised so the
        function is unchanged (a new module; this one is left as it is)."""
        if self.context is not None:
            raise ValueError("the model already has a set-context branch")
        grown = Pancakes(dataclasses.replace(self.config, set_context=hidden))
        missing, unexpected = grown.load_state_dict(self.state_dict(), strict=False)
        if unexpected or any(not k.startswith("context.") for k in missing):
            raise ValueError(f"cannot grow: missing {missing}, unexpected {unexpected}")
        return self._settled(grown)

    def grow_per_image_context(self) -> Pancakes:
        """This model with its set-context branch also seeing each image's own description
        (``config.context_per_image``); the new inputs start at zero weight, so the function is
        unchanged (a new module; this one is left as it is)."""
        if self.context is None:
            raise ValueError("the model has no set-context branch to extend (grow_set_context first)")
        if self.context.per_image:
            raise ValueError("the model's set-context branch already sees each image")
        grown = Pancakes(dataclasses.replace(self.config, context_per_image=True))
        state = self.state_dict()
        first = state.pop("context.mlp.0.weight")  # (hidden, 2C): the shared inputs' columns
        missing, unexpected = grown.load_state_dict(state, strict=False)
        if unexpected or missing != ["context.mlp.0.weight"]:
            raise ValueError(f"cannot grow: missing {missing}, unexpected {unexpected}")
        with torch.no_grad():
            weight = grown.context.mlp[0].weight.zero_()
            weight[:, : first.shape[1]] = first
        return self._settled(grown)

    def grow_features(self, features: int, *, noise: float = 0.01, seed: int = 0) -> Pancakes:
        """This model with ``features`` UNet channels computing the same function but for ``noise``
        on the new channels (Net2WiderNet: :mod:`~pancakes_model.network.grow`; ``seed`` draws the
        copied channels, the splits and the noise). A new module; this one is left as it is."""
        state = widen_state(  # ValueError unless wider: before a model of that width is built
            self.state_dict(),
            features=self.config.features,
            wider=features,
            noise=noise,
            generator=torch.Generator().manual_seed(seed),
        )
        grown = Pancakes(dataclasses.replace(self.config, features=features))
        grown.load_state_dict(state)
        return self._settled(grown)

    def factors(
        self, images: torch.Tensor, M: int = 8, K: int = 20, *, context: torch.Tensor | None = None
    ) -> LogitFactors:
        """The logits of every image and candidate in factored form (gradients flow if enabled).

        Args:
            images: (B, S, C, H, W) in [0, 1].
            M, K: protocols and labels per protocol.
            context: (B, 2C) set summaries (:meth:`queries`); None: each set is the images given.

        Returns:
            :class:`LogitFactors` with q (B·S, D, H, W), key (M, K, D), bias (M, K); protocol m
            offers ``config.label_counts(M, K)[m]`` of the K labels.
        """
        return self.candidates(self.queries(images, context), M, K)

    def candidates(self, q: torch.Tensor, M: int = 8, K: int = 20) -> LogitFactors:
        """Queries q (N, D, H, W) from :meth:`queries` → :class:`LogitFactors` of M protocols of K
        labels. The featurizer — nearly all of the cost — runs once in :meth:`queries`, so several
        (M, K) of the same images (the evaluation's M × K grid) cost one forward."""
        check_mk(M, K)
        counts = self.config.label_counts(M, K)
        return self.sampler.combine(q, self.embedding(M, K, counts), counts)

    def forward(self, images: torch.Tensor, M: int = 8, K: int = 20, *, logits: bool = False) -> torch.Tensor:
        """Predict M protocols of K labels for every image of every set.

        Args:
            images: (B, S, C, H, W) in [0, 1]; H, W multiples of 16.
            M: number of protocols (≥ 1).
            K: number of labels per protocol (≥ 1).
            logits: return logits instead of probabilities.

        Returns:
            (B, S, M, K, H, W) probabilities (softmax over K) or logits.
        """
        check_mk(M, K)
        b = images.shape[0] if isinstance(images, torch.Tensor) and images.ndim == 5 else 0
        f = self.factors(images, M, K)
        out = f.logits() if logits else f.probs()
        return rearrange(out, "(B S) M K H W -> B S M K H W", B=b)

    @torch.no_grad()
    def predict_labels(self, images: torch.Tensor, M: int = 8, K: int = 20) -> torch.Tensor:
        """Integer label maps (B, S, M, H, W): argmax over K of the logits (:meth:`LogitFactors.labels`;
        no softmax is computed), int64."""
        b = images.shape[0] if isinstance(images, torch.Tensor) and images.ndim == 5 else 0
        labels = self.factors(images, M, K).labels().long()
        return rearrange(labels, "(B S) M H W -> B S M H W", B=b)

    # ---- weights
    def save_pretrained(self, path: str | Path, *, provenance: dict[str, Any] | None = None) -> Path:
        """Write ``path`` (a ``.safetensors`` file) with the config, preprocessing and provenance."""
        return save_weights(self, path, provenance=provenance)

    @classmethod
    def from_pretrained(cls, path_or_name: str | Path = "default", *, map_location: str = "cpu") -> Pancakes:
        """Load a model saved by :meth:`save_pretrained`; ``"default"`` is the shipped model."""
        return load_weights(cls, path_or_name, map_location=map_location)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def config_json(self) -> str:
        return json.dumps(asdict(self.config), sort_keys=True)


def pancakes(**overrides: Any) -> Pancakes:
    """The paper-sized model (~0.22 M parameters)."""
    return Pancakes(PancakesConfig(), **overrides)
