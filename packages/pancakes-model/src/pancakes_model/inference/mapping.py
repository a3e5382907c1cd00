"""Mapping predictions from the model grid back to an input's own pixels, in bounded memory.

The result equals bilinear interpolation (border padding, ``align_corners=False``) of the logits
``q·key + bias`` to the output grid followed by argmax over K, computed where it matters:

- the argmax on the model grid is taken once; an output pixel whose 2×2 source cell has one label
  in a protocol takes that label (a convex blend of logit vectors that all rank k first still
  ranks k first);
- only output pixels whose cell is mixed in that protocol are computed exactly, and there the
  query (D values) is interpolated instead of the M·K logits (the logits are linear in q).

Output rows are processed in blocks of about ``BLOCK_PIXELS`` pixels, so the temporaries never
grow with the image: a 9,000² output costs what a 1,000² one does, plus the output itself.
"""

from __future__ import annotations

import numpy as np
import torch
from einops import rearrange

from pancakes_data import SlicePlan
from pancakes_model.network.sampler import LogitFactors, argmax_leading

__all__ = ["BLOCK_PIXELS", "queries_to_labels"]

BLOCK_PIXELS = 1 << 20  # output pixels (× protocols × slices) per block of rows


def _grid_labels(q: torch.Tensor, key: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Labels on the model grid, (M·n, G, G) rows ordered (protocol, slice): the argmax of the logits."""
    lab = LogitFactors(q, key, bias, float("inf")).labels()  # (n, M, G, G)
    return rearrange(lab, "N M H W -> (M N) H W").contiguous()


def _mixed(lab: torch.Tensor) -> torch.Tensor:
    """Where a 2×2 cell (i..i+1, j..j+1) of the grid labels is mixed (an edge joins two labels)."""
    vert = lab[:, 1:] != lab[:, :-1]
    horz = lab[:, :, 1:] != lab[:, :, :-1]
    mixed = torch.zeros(lab.shape, dtype=torch.bool)
    mixed[:, :-1] |= vert
    mixed[:, :-1, :-1] |= vert[:, :, 1:]
    mixed[:, :, :-1] |= horz
    mixed[:, :-1, :-1] |= horz[:, 1:]
    return mixed


def queries_to_labels(
    q: torch.Tensor, key: torch.Tensor, bias: torch.Tensor, plan: SlicePlan, *, block_pixels: int = BLOCK_PIXELS
) -> np.ndarray:
    """Queries of n slices that share one plan → (n, M, H, W) labels on their original grid.

    Args:
        q: (n, D, G, G) queries on the model grid.
        key: (M, K, D) keys with the temperature folded in; bias: (M, K).
        plan: how each slice was mapped to the grid.
        block_pixels: output pixels × protocols × slices per block of rows (bounds memory).

    Returns:
        (n, M, H, W) uint8 labels (uint16 when K > 256).
    """
    n, d, g, _ = q.shape
    m_count, k_count, _ = key.shape
    small = k_count <= 256
    lab_grid = _grid_labels(q, key, bias)
    h_out, w_out = plan.shape
    rows_all, cols = plan.inverse_coords()
    if (h_out, w_out) == (g, g) and np.array_equal(rows_all, np.arange(g)) and np.array_equal(cols, np.arange(g)):
        # the input is the model grid itself: every output pixel is a grid pixel, nothing to blend
        out_grid = rearrange(lab_grid, "(M N) H W -> N M H W", M=m_count).numpy()
        return out_grid.astype(np.uint8 if small else np.uint16, copy=False)
    mixed = _mixed(lab_grid)
    lab_flat = lab_grid.numpy().reshape(m_count * n, g * g)
    mixed_flat = mixed.numpy().reshape(m_count * n, g * g)
    out = np.empty((n, m_count, h_out, w_out), np.uint8 if small else np.uint16)
    cc = np.clip(cols, 0, g - 1)
    c0 = np.minimum(np.floor(cc).astype(np.int64), g - 2)
    near_c = np.rint(cc).astype(np.int64)
    c0t = torch.from_numpy(c0)
    fx = torch.from_numpy((cc - c0).astype(np.float32))
    qt = rearrange(q, "N D H W -> N H W D")
    # Columns are interpolated once for every source row of every slice: (n, G, W, D) — it grows
    # with the width only; the rows are interpolated per block where they are needed.
    by_col = torch.lerp(
        qt.index_select(2, c0t), qt.index_select(2, c0t + 1), fx[None, None, :, None].expand(n, g, w_out, d)
    )
    by_col = by_col.reshape(-1, d)
    step = max(1, block_pixels // max(1, w_out * m_count * n))
    for start in range(0, h_out, step):
        stop = min(h_out, start + step)
        rc = np.clip(rows_all[start:stop], 0, g - 1)
        r0 = np.minimum(np.floor(rc).astype(np.int64), g - 2)
        pix = (stop - start) * w_out
        near = (np.rint(rc).astype(np.int64)[:, None] * g + near_c).ravel()
        cell = (r0[:, None] * g + c0).ravel()
        # numpy's take along an axis is several times faster than torch's index_select or
        # advanced indexing for these small-integer gathers on a CPU. Rows: (protocol, slice).
        block = np.take(lab_flat, near, axis=1)  # each output pixel's cell label
        pairs = torch.from_numpy(np.flatnonzero(np.take(mixed_flat, cell, axis=1)))  # by protocol, slice
        if pairs.numel():
            mm, rest = pairs // (n * pix), pairs % (n * pix)
            ss, p = rest // pix, rest % pix
            yy, xx = p // w_out, p % w_out
            r0t = torch.from_numpy(r0).index_select(0, yy)
            fy = torch.from_numpy((rc - r0).astype(np.float32)).index_select(0, yy)[:, None].expand(-1, d)
            upper = (ss * g + r0t) * w_out + xx
            qp = torch.lerp(by_col.index_select(0, upper), by_col.index_select(0, upper + w_out), fy)  # (pairs, D)
            counts = torch.bincount(mm, minlength=m_count).tolist()
            best = torch.cat(
                [
                    argmax_leading(torch.addmm(bias[m][:, None], key[m], part.T))  # (K, pairs) label-major
                    for m, part in enumerate(torch.split(qp, counts))
                    if counts[m]
                ]
            )
            block.reshape(-1)[pairs.numpy()] = best.numpy()
        out[:, :, start:stop] = rearrange(block, "(M N) (H W) -> N M H W", M=m_count, W=w_out)
    return out
