"""Protocol/label embeddings e(m, k) (paper eq. 3–4), made non-degenerate."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["ProtocolEmbedding", "check_mk"]


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

    def forward(self, M: int, K: int, counts: Sequence[int] | None = None) -> torch.Tensor:
        """v for every (m, k): (M, K, 2J).

        Args:
            M, K: protocols and labels per protocol.
            counts: labels of each protocol (≤ K; default K for all): protocol m's labels are
                u(k; counts[m]), so its label positions span [0, 1] like those of a K-label protocol;
                rows k ≥ counts[m] are zero (the model masks them).
        """
        check_mk(M, K)
        um = self.encode(M)[:, None, :].expand(M, K, self.dims)
        if counts is None or all(c == K for c in counts):
            uk = self.encode(K)[None, :, :].expand(M, K, self.dims)
        else:
            if len(counts) != M or any(not 1 <= c <= K for c in counts):
                raise ValueError(f"counts must hold M={M} label counts in [1, K={K}], got {list(counts)}")
            uk = um.new_zeros((M, K, self.dims))
            for count in sorted(set(counts)):
                rows = [m for m, c in enumerate(counts) if c == count]
                uk[rows, :count] = self.encode(count)
        return torch.cat([um, uk], dim=-1)
