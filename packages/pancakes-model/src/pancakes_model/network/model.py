"""The Pancakes network: featurizer f, protocol/label embeddings e, sampler h.

Reads top-down: small blocks → UNet featurizer → embeddings → sampler → the model → factory.

Shapes use the shared axis letters: B batch, S set, M protocols, K labels, C channels, H, W.

    images (B, S, 1, H, W) ──f──▶ φ (B·S, C, H, W) ──┐
                                                    ├─h─▶ logits (B, S, M, K, H, W) ─softmax_K─▶ probs
    (M, K) ──e──▶ v (M, K, 2J) ─────────────────────┘

The sampler is written so that everything that depends on φ is computed once per image and
everything that depends on (m, k) once per candidate; their combination is a single batched
matrix product, so the per-(m, k) cost is one dot product per pixel.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

__all__ = [
    "ConvBlock",
    "Pancakes",
    "PancakesConfig",
    "ProtocolEmbedding",
    "Sampler",
    "UNet",
    "check_mk",
]


# --------------------------------------------------------------------------- small blocks
class ConvBlock(nn.Sequential):
    """Two 3×3 convolutions, each followed by PReLU: (N, C_in, H, W) → (N, C_out, H, W)."""

    def __init__(self, *, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1),
            nn.PReLU(out_channels),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
            nn.PReLU(out_channels),
        )


# --------------------------------------------------------------------------- featurizer f
class UNet(nn.Module):
    """The featurizer f(x) = φ: a 4-level UNet with the same width everywhere.

    Each encoder level is a :class:`ConvBlock` followed by 2× max-pooling; a bottleneck block
    works at 1/16 resolution; each decoder level up-samples with a 2×2 stride-2 transposed
    convolution, concatenates the skip and applies a :class:`ConvBlock`. A final 1×1 convolution
    + PReLU gives φ at full resolution.

    Args:
        in_channels: image channels (1 for grey images).
        features: channels at every level and of φ.
        levels: number of pooling levels; H and W must be divisible by 2**levels.
    """

    def __init__(self, *, in_channels: int = 1, features: int = 32, levels: int = 4) -> None:
        super().__init__()
        self.levels = levels
        self.down = nn.ModuleList(
            ConvBlock(in_channels=in_channels if i == 0 else features, out_channels=features) for i in range(levels)
        )
        self.bottleneck = ConvBlock(in_channels=features, out_channels=features)
        self.up = nn.ModuleList(nn.ConvTranspose2d(features, features, 2, stride=2) for _ in range(levels))
        self.decode = nn.ModuleList(ConvBlock(in_channels=2 * features, out_channels=features) for _ in range(levels))
        self.out = nn.Sequential(nn.Conv2d(features, features, 1), nn.PReLU(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, H, W) → φ (N, features, H, W)."""
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottleneck(x)
        for up, block, skip in zip(self.up, self.decode, reversed(skips)):
            x = block(torch.cat([up(x), skip], dim=1))
        return self.out(x)


# --------------------------------------------------------------------------- embeddings e
def check_mk(M: int, K: int) -> None:
    """Validate the number of protocols M and labels K (both ≥ 1, integers)."""
    for name, value in (("M", M), ("K", K)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")


class ProtocolEmbedding(nn.Module):
    """Sinusoidal embedding v_{m,k} = u(m; M) ‖ u(k; K) of paper eq. 3–4, made non-degenerate.

    Position t of T is mapped to x = t / (T − 1) ∈ [0, 1] (x = 0 when T = 1), then
    u(x) = [sin(ω_j x), cos(ω_j x)]_{j < J/2} with ω_j = π · 2^j.

    Deviation from the paper/official code, on purpose: the official columns are
    sin(z + π/2) and sin(z − π/2), i.e. cos z and −cos z, exact negatives, so half the dimensions
    carry no information; and x = t / (T − 1) divides by zero for M = 1 or K = 1 (NaN). Using
    sin/cos pairs restores all J dimensions, and defining x = 0 for T = 1 makes M = 1 and K = 1
    valid. The embedding has no parameters; it is a module so it moves with the model.

    Args:
        dims: J, the size of u for one index (even).
    """

    def __init__(self, *, dims: int = 12) -> None:
        super().__init__()
        if dims < 2 or dims % 2:
            raise ValueError(f"embedding dims J must be an even integer >= 2, got {dims}")
        self.dims = dims
        self.register_buffer("freqs", math.pi * 2.0 ** torch.arange(dims // 2, dtype=torch.float32), persistent=False)

    def encode(self, count: int) -> torch.Tensor:
        """u(t; T) for t = 0 … T−1: (T, J)."""
        x = torch.arange(count, dtype=self.freqs.dtype, device=self.freqs.device)
        x = x / (count - 1) if count > 1 else x
        z = x[:, None] * self.freqs[None, :]
        return torch.cat([torch.sin(z), torch.cos(z)], dim=1)

    def forward(self, M: int, K: int) -> torch.Tensor:
        """v for every (m, k): (M, K, 2J)."""
        check_mk(M, K)
        um = self.encode(M)[:, None, :].expand(M, K, self.dims)
        uk = self.encode(K)[None, :, :].expand(M, K, self.dims)
        return torch.cat([um, uk], dim=-1)


# --------------------------------------------------------------------------- sampler h
class Sampler(nn.Module):
    """h(φ ‖ v_{m,k}) → one logit per pixel, image and candidate (m, k).

    h is a per-pixel query against a per-candidate key:

        logit(s, m, k, p) = τ · cos(q(φ_s(p)), κ(v_{m,k})) + β · tanh(b(v_{m,k}))

    with q a two-layer 1×1 network on φ (computed once per image), κ and b small MLPs on the
    embedding (computed once per candidate). Logits are bounded by τ + β, so the softmax over K
    cannot saturate — unbounded dot-product logits stalled training in a probe (see
    ``shared/notes/performance.md``); the cosine form with τ = 10 trained well.

    The same function is also available in its "concat" form (``forward_concat``): every
    (image, m, k) map is built by concatenating φ with the broadcast v and applying h per pixel.
    The two are algebraically identical; a test checks it in float64.

    Args:
        features: channels of φ.
        embed_dims: size of v (2J).
        dims: query/key size D.
        hidden: hidden width of the key/bias MLP.
        temperature: τ.
        bias_bound: β.
    """

    def __init__(
        self,
        *,
        features: int = 32,
        embed_dims: int = 24,
        dims: int = 32,
        hidden: int = 64,
        temperature: float = 10.0,
        bias_bound: float = 2.0,
    ) -> None:
        super().__init__()
        self.features = features
        self.temperature = temperature
        self.bias_bound = bias_bound
        self.query = nn.Sequential(nn.Conv2d(features, dims, 1), nn.PReLU(dims), nn.Conv2d(dims, dims, 1))
        self.key = nn.Sequential(nn.Linear(embed_dims, hidden), nn.PReLU(), nn.Linear(hidden, dims + 1))

    def queries(self, phi: torch.Tensor) -> torch.Tensor:
        """Unit-norm per-pixel queries: φ (N, C, H, W) → (N, D, H, W)."""
        q = self.query(phi)
        # q / max(|q|, eps) as in F.normalize, via rsqrt of a channel sum: 2× faster on a CPU.
        return q * torch.rsqrt(q.pow(2).sum(dim=1, keepdim=True).clamp_min(1e-12))

    def keys(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-candidate keys and biases: v (..., 2J) → unit keys (..., D), biases (...)."""
        out = self.key(v)
        key = F.normalize(out[..., :-1], dim=-1, eps=1e-6)
        bias = self.bias_bound * torch.tanh(out[..., -1])
        return key, bias

    def combine(self, q: torch.Tensor, key: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """Logits from queries (N, D, H, W) and keys (M, K, D) / biases (M, K): (N, M, K, H, W)."""
        n, d, h, w = q.shape
        m, k, _ = key.shape
        flat_q = rearrange(q, "N D H W -> N D (H W)")
        # Fold τ into the (tiny) key matrix and the bias into the product: one fused batched
        # matmul (N, MK, D) @ (N, D, HW) + (MK, 1) → (N, MK, HW), no full-size temporaries.
        flat_k = rearrange(key * self.temperature, "M K D -> (M K) D").expand(n, m * k, d)
        flat_b = rearrange(bias, "M K -> (M K) 1").expand(n, m * k, 1)
        logits = torch.baddbmm(flat_b, flat_k, flat_q)
        return rearrange(logits, "N (M K) (H W) -> N M K H W", M=m, K=k, H=h, W=w)

    def forward(self, phi: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """φ (N, C, H, W), v (M, K, 2J) → logits (N, M, K, H, W)."""
        key, bias = self.keys(v)
        return self.combine(self.queries(phi), key, bias)

    def forward_concat(self, phi: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Reference form: h applied per pixel to the concatenation φ ‖ v, map by map.

        Slow (builds N·M·K maps of C + 2J channels); used to check the fast path and in
        benchmarks. Same signature and output as :meth:`forward`.
        """
        n, c, h, w = phi.shape
        m, k, e = v.shape
        out = phi.new_empty((n, m, k, h, w))
        for mi in range(m):
            for ki in range(k):
                cat = torch.cat([phi, v[mi, ki].view(1, e, 1, 1).expand(n, e, h, w)], dim=1)
                x_phi, x_v = cat[:, :c], cat[:, c:]
                q = F.normalize(self.query(x_phi), dim=1, eps=1e-6)
                kv = self.key(rearrange(x_v, "N E H W -> N H W E"))
                key = F.normalize(kv[..., :-1], dim=-1, eps=1e-6)
                bias = self.bias_bound * torch.tanh(kv[..., -1])
                cos = (rearrange(q, "N D H W -> N H W D") * key).sum(-1)
                out[:, mi, ki] = self.temperature * cos + bias
        return out


# --------------------------------------------------------------------------- the model
def _softmax_k(logits: torch.Tensor, bound: float) -> torch.Tensor:
    """Softmax over K (axis 2) of (N, M, K, H, W) or (B, S, K, P) logits.

    Without autograd it runs in place: logits are bounded by τ + β, so exp cannot overflow and
    no max-subtraction is needed (``bound`` = τ + β; a model configured with a larger bound takes
    the standard path), and reusing the buffer avoids two full-size allocations.
    """
    if (torch.is_grad_enabled() and logits.requires_grad) or bound > 60.0:
        return logits.softmax(dim=2)
    out = logits.exp_()
    return out.div_(out.sum(dim=2, keepdim=True))


@dataclass
class PancakesConfig:
    """Architecture hyper-parameters (stored beside the weights)."""

    in_channels: int = 1
    features: int = 32
    levels: int = 4
    embed_dims: int = 12  # J per index; v has 2J entries
    sampler_dims: int = 32
    sampler_hidden: int = 64
    temperature: float = 10.0
    bias_bound: float = 2.0
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PancakesConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown Pancakes config keys: {unknown}")
        return cls(**data)


class Pancakes(nn.Module):
    """Multi-protocol, set-consistent segmentation.

    ``model(images, M=8, K=20)`` returns probabilities (B, S, M, K, H, W); softmax over K makes
    every protocol m a full partition of every image. Deterministic: no noise is sampled.

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
        self._memory_format = torch.contiguous_format

    def train(self, mode: bool = True) -> Pancakes:
        """Switch mode and the featurizer's memory layout with it.

        Measured on 2 AVX2 cores (benchmarks/bench_model.py): channels_last makes inference
        ~25 % faster but the training step ~20 % slower, so eval mode uses channels_last and
        training mode the default layout. Parameters keep their identity (optimizers stay valid).
        """
        super().train(mode)
        fmt = torch.contiguous_format if mode else torch.channels_last
        if fmt != self._memory_format:
            self.featurizer.to(memory_format=fmt)
            self._memory_format = fmt
        return self

    # ---- input checks
    def check_images(self, images: torch.Tensor) -> None:
        """Raise ValueError unless ``images`` is a finite (B, S, C, H, W) tensor with H, W ok."""
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
        if not torch.isfinite(images).all():
            raise ValueError("images contain NaN or inf")

    # ---- the pieces, exposed for training (winner-only gradients) and inference
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, S, C, H, W) → φ (B·S, F, H, W)."""
        self.check_images(images)
        x = rearrange(images, "B S C H W -> (B S) C H W")
        return self.featurizer(x.contiguous(memory_format=self._memory_format))

    def candidate_logits(self, phi: torch.Tensor, M: int, K: int) -> torch.Tensor:
        """φ (N, F, H, W) → logits (N, M, K, H, W) for all candidates."""
        return self.sampler(phi, self.embedding(M, K))

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
        out = self.candidate_logits(self.features(images), M, K)
        if not logits:
            out = _softmax_k(out, self.config.temperature + self.config.bias_bound)
        return rearrange(out, "(B S) M K H W -> B S M K H W", B=b)

    @torch.no_grad()
    def logit_factors(self, images: torch.Tensor, M: int = 8, K: int = 20) -> tuple[torch.Tensor, ...]:
        """The logits of :meth:`forward` in factored form, for dense inference at any resolution.

        ``logits[n, m, k, y, x] = Σ_d q[n, d, y, x] · key[m, k, d] + bias[m, k]``: the logits are
        linear in the per-pixel query, so interpolating ``q`` and then combining equals
        interpolating the logits — at D values per pixel instead of M·K.

        Args:
            images: (B, S, C, H, W) in [0, 1].
            M, K: protocols and labels per protocol.

        Returns:
            q (B·S, D, H, W) unit queries, key (M, K, D) with τ folded in, bias (M, K).
        """
        check_mk(M, K)
        q = self.sampler.queries(self.features(images))
        key, bias = self.sampler.keys(self.embedding(M, K))
        return q, key * self.sampler.temperature, bias

    @torch.no_grad()
    def predict_labels(self, images: torch.Tensor, M: int = 8, K: int = 20) -> torch.Tensor:
        """Integer label maps (B, S, M, H, W): argmax over K of :meth:`forward`."""
        return self.forward(images, M, K, logits=True).argmax(dim=3)

    # ---- weights
    def save_pretrained(self, path: str | Path, *, provenance: dict[str, Any] | None = None) -> Path:
        """Write ``path`` (a ``.safetensors`` file) with the config + provenance in its metadata."""
        from pancakes_model.network.weights import save_weights

        return save_weights(self, path, provenance=provenance)

    @classmethod
    def from_pretrained(cls, path_or_name: str | Path = "default", *, map_location: str = "cpu") -> Pancakes:
        """Load a model saved by :meth:`save_pretrained`; ``"default"`` is the shipped model."""
        from pancakes_model.network.weights import load_weights

        return load_weights(cls, path_or_name, map_location=map_location)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def config_json(self) -> str:
        return json.dumps(asdict(self.config), sort_keys=True)


# --------------------------------------------------------------------------- factory
def pancakes(**overrides: Any) -> Pancakes:
    """The paper-sized model (~0.22 M parameters)."""
    return Pancakes(PancakesConfig(), **overrides)
