"""The sampler h(φ ‖ e(m, k)) and its factored form — the one home of the logit function.

    logit(n, m, k, p) = τ · ⟨q(φ_n(p)), κ(v_{m,k})⟩ + β · tanh(b(v_{m,k}))

with q a unit per-pixel query (computed once per image), κ a unit key and b a bias (computed once
per candidate). :class:`LogitFactors` holds q, the key with τ folded in and the bias; everything
that needs logits — the forward pass, the winner-only loss (a no-grad candidate table, then the
winning protocols with gradients), dense inference at the input's resolution (the logits are
linear in q, so q can be interpolated instead of M·K logit maps) — asks it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

__all__ = ["MASKED_BIAS", "LogitFactors", "Sampler", "argmax_leading", "bounded_softmax"]

# exp(x) of a float32 stays finite and accurate for |x| well below 88; above this bound the
# in-place path without max-subtraction is not used.
_SAFE_BOUND = 60.0
# The bias of a label its protocol does not offer (PancakesConfig.label_caps): exp() of such a
# logit is exactly 0 in float32 and argmax never picks it, so every path that asks LogitFactors
# (probabilities, labels, the candidate table) leaves it out without a code path of its own.
MASKED_BIAS = -1.0e4


def bounded_softmax(logits: torch.Tensor, bound: float, *, dim: int) -> torch.Tensor:
    """Softmax over ``dim`` of logits known to lie within ±``bound``.

    Without autograd it runs in place: exp cannot overflow, so no max-subtraction is needed, and
    reusing the buffer avoids two full-size allocations. With autograd (or a larger bound) it is
    the standard softmax.
    """
    if (torch.is_grad_enabled() and logits.requires_grad) or bound > _SAFE_BOUND:
        return logits.softmax(dim=dim)
    out = logits.exp_()
    return out.div_(out.sum(dim=dim, keepdim=True))


def argmax_leading(x: torch.Tensor, dtype: torch.dtype = torch.int64) -> torch.Tensor:
    """argmax over the first axis of (K, ...); ties keep the lowest index, like ``argmax``.

    ``amax(0)`` over a leading axis is elementwise work across K contiguous slabs: take the maximum,
    mark where each k attains it with the code K − k, and the largest code is the lowest winning
    index (NaN columns give K − 1).

    Args:
        x: (K, ...) values.
        dtype: dtype of the result.
    """
    k = x.shape[0]
    code_dtype = torch.uint8 if k < 256 else torch.int32
    codes = torch.arange(k, 0, -1, dtype=code_dtype, device=x.device).view(k, *([1] * (x.ndim - 1)))
    hit = torch.empty(x.shape, dtype=code_dtype, device=x.device)
    if code_dtype == torch.uint8:
        torch.eq(x, x.amax(dim=0), out=hit.view(torch.bool))  # no separate bool → uint8 copy
    else:
        hit.copy_(torch.eq(x, x.amax(dim=0)))
    hit.mul_(codes)
    # k − (largest code); clamp: a NaN column has no code at all
    return hit.amax(dim=0).neg_().add_(k).clamp_(0, k - 1).to(dtype)


@dataclass
class LogitFactors:
    """The sampler's logits in factored form.

    ``logits[n, m, k, y, x] = Σ_d q[n, d, y, x] · key[m, k, d] + bias[m, k]``.

    Attributes:
        q: (N, D, H, W) unit queries (N = B·S images).
        key: (M, K, D) unit keys times the temperature τ.
        bias: (M, K) bounded biases (:data:`MASKED_BIAS` for a label its protocol does not offer).
        bound: τ + β, the largest possible logit (and |logit| of every offered label).
        offered: (M, K) bool, which labels each protocol offers; None: all.
    """

    q: torch.Tensor
    key: torch.Tensor
    bias: torch.Tensor
    bound: float
    offered: torch.Tensor | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """(M, K)."""
        return int(self.key.shape[0]), int(self.key.shape[1])

    def detach(self) -> LogitFactors:
        return LogitFactors(self.q.detach(), self.key.detach(), self.bias.detach(), self.bound, self.offered)

    def logits(self, protocols: torch.Tensor | int | None = None) -> torch.Tensor:
        """Logits of all candidates, one protocol, or one protocol per image.

        Args:
            protocols: ``None`` → (N, M, K, H, W); an int m → (N, K, H, W) of protocol m; a
                (N,) long tensor → (N, K, H, W), image n with protocol ``protocols[n]``.
        """
        n, d, h, _ = self.q.shape
        flat_q = rearrange(self.q, "N D H W -> N D (H W)")
        if protocols is None:
            m, k = self.shape
            flat_k = rearrange(self.key, "M K D -> (M K) D").expand(n, m * k, d)
            flat_b = rearrange(self.bias, "M K -> (M K) 1").expand(n, m * k, 1)
            # one fused batched matmul (N, MK, D) @ (N, D, HW) + bias: no full-size temporaries
            out = torch.baddbmm(flat_b, flat_k, flat_q)
            return rearrange(out, "N (M K) (H W) -> N M K H W", M=m, H=h)
        if isinstance(protocols, int):
            key, bias = self.key[protocols].expand(n, -1, -1), self.bias[protocols].expand(n, -1)
        else:
            key, bias = self.key[protocols], self.bias[protocols]  # (N, K, D), (N, K)
        out = torch.baddbmm(bias[:, :, None], key, flat_q)
        return rearrange(out, "N K (H W) -> N K H W", H=h)

    def labels(self, *, block: int = 4096) -> torch.Tensor:
        """Label maps: argmax over K of :meth:`logits` — never a softmax — as (N, M, H, W) uint8
        (int32 when K > 256); ties go to the lower k.

        The logits of a block of pixels are made label-major, (K·M, pixels) = key (K·M, D) @ qᵀ, so
        the block stays in cache and the argmax over K is elementwise work across K contiguous
        slabs (:func:`argmax_leading`); over K in the (M, K, H, W) layout it reads with a stride of
        H·W, and over a short last axis it vectorises poorly — both measured 2× slower on a CPU.
        """
        n, _d, h, w = self.q.shape
        m, k = self.shape
        flat_q = rearrange(self.q, "N D H W -> N D (H W)")
        keys = rearrange(self.key, "M K D -> (K M) D")
        bias = rearrange(self.bias, "M K -> (K M) 1")
        dtype = torch.uint8 if k <= 256 else torch.int32
        if self.q.device.type != "cpu":
            return self._labels_blocks(flat_q, keys, bias, dtype).view(n, m, h, w)
        out = torch.empty((n, m, h * w), dtype=dtype, device=self.q.device)
        for i in range(n):
            for start in range(0, h * w, block):
                stop = min(start + block, h * w)
                logits = torch.addmm(bias, keys, flat_q[i, :, start:stop])  # (K·M, pixels)
                out[i, :, start:stop] = argmax_leading(logits.view(k, m, stop - start), dtype)
        return out.view(n, m, h, w)

    def _labels_blocks(self, flat_q, keys, bias, dtype: torch.dtype, *, elements: int = 1 << 26) -> torch.Tensor:
        """Accelerators: :meth:`labels` in blocks of whole images (about ``elements`` logits, or one
        image's pixels in slices when it alone is larger): a few kernels a block, where the CPU's
        cache-sized loop launches ~K per (image, pixel block) and was slower than the whole forward
        on an H200 (3.3 vs 2.1 ms at S = 1, M = 8, K = 20). (N, D, P) → (N, M, P)."""
        n, _d, pixels = flat_q.shape
        m, k = self.shape
        per_image = max(1, elements // (k * m * pixels))
        step = min(pixels, max(1, elements // (k * m)))
        out = torch.empty((n, m, pixels), dtype=dtype, device=flat_q.device)
        for i0 in range(0, n, per_image):
            qb = flat_q[i0 : i0 + per_image]
            g = qb.shape[0]
            for s0 in range(0, pixels, step):
                logits = torch.baddbmm(bias.expand(g, -1, 1), keys.expand(g, -1, -1), qb[..., s0 : s0 + step])
                # argmax over K in the (K, M) rows: the first maximum, so ties go to the lower k as on a CPU
                out[i0 : i0 + g, :, s0 : s0 + step] = logits.view(g, k, m, -1).argmax(1).to(dtype)
        return out

    def probs(self, protocols: torch.Tensor | int | None = None) -> torch.Tensor:
        """Softmax over K of :meth:`logits` (same shapes; K is axis 2 or axis 1)."""
        dim = 2 if protocols is None else 1
        return bounded_softmax(self.logits(protocols), self.bound, dim=dim)


class Sampler(nn.Module):
    """h(φ ‖ v_{m,k}) → one logit per pixel, image and candidate (m, k).

    Logits are bounded by τ + β, so the softmax over K cannot saturate — unbounded dot-product
    logits stalled training in an early probe (the softmax saturated and the losing labels got no
    gradient); the cosine form with τ = 10 trained well. The same function is also available in its "concat" form
    (:meth:`forward_concat`): every (image, m, k) map built by concatenating φ with the broadcast v
    and applying h per pixel; the two are algebraically identical (a test checks it in float64).

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

    def factors(self, phi: torch.Tensor, v: torch.Tensor) -> LogitFactors:
        """φ (N, C, H, W), v (M, K, 2J) → :class:`LogitFactors`."""
        return self.combine(self.queries(phi), v)

    def combine(self, q: torch.Tensor, v: torch.Tensor, counts: Sequence[int] | None = None) -> LogitFactors:
        """Unit queries q (N, D, H, W) from :meth:`queries` and v (M, K, 2J) → :class:`LogitFactors`.

        ``counts[m]`` < K leaves labels k ≥ counts[m] of protocol m out (bias :data:`MASKED_BIAS`).
        """
        key, bias = self.keys(v)
        offered = None
        m, k = bias.shape
        if counts is not None and any(c < k for c in counts):
            if len(counts) != m:
                raise ValueError(f"counts must hold M={m} label counts, got {list(counts)}")
            offered = torch.arange(k, device=bias.device)[None, :] < torch.tensor(counts, device=bias.device)[:, None]
            bias = bias.masked_fill(~offered, MASKED_BIAS)
        return LogitFactors(q, key * self.temperature, bias, self.temperature + self.bias_bound, offered)

    def forward(self, phi: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """φ (N, C, H, W), v (M, K, 2J) → logits (N, M, K, H, W)."""
        return self.factors(phi, v).logits()

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
