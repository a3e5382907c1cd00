"""Count the connected objects of every label of a label map, exactly, in one streaming pass.

Full connectivity (8 neighbours in 2D, 26 in 3D: touching corners join). ``scipy.ndimage.label``
per label needs one pass over the map per label (~2 ms per 256² protocol map, ~15 % of
``pancakes segment``'s time on PNGs); this works on *runs* — maximal stretches of one value along
the last axis — instead of pixels, so the graph it solves has a few nodes per row rather than one
per pixel, and every label is counted in the same pass (measured ~5× faster on 256² maps).

The map is read in blocks of planes along axis 0 (rows in 2D, slices in 3D) of at most
``BLOCK_ELEMENTS`` elements; only the last plane's runs travel to the next block, as the objects
they belong to, so memory is bounded by the block size whatever the map's size — an object that
no longer reaches the current plane is finished and counted.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

__all__ = ["BLOCK_ELEMENTS", "count_objects"]

BLOCK_ELEMENTS = 1 << 22


def _offsets(ndim: int) -> list[tuple[int, ...]]:
    """Neighbour offsets (over a map's ``ndim`` axes) of the rows that come later in raster order,
    each with the three shifts along the last axis."""
    rows = [o for o in itertools.product((-1, 0, 1), repeat=ndim - 1) if o > (0,) * (ndim - 1)]
    return [(*o, dx) for o in rows for dx in (-1, 0, 1)]


def _block_objects(block: np.ndarray, n_values: int, carry, last: bool):
    """Objects of a block of maps (B, P, ...): counts of the finished ones (B, n_values) and the
    carry for the next block (only when B == 1 and ``last`` is false).

    ``carry`` = (object of each run of the block's plane 0, number of objects) when plane 0 is the
    previous block's last plane, else None."""
    shape = block.shape
    flat = block.ravel()
    start = np.empty(shape, bool)
    start[..., 0] = True
    np.not_equal(block[..., 1:], block[..., :-1], out=start[..., 1:])
    idx = np.flatnonzero(start)  # where each run begins, in raster order: run i starts at idx[i]
    n = len(idx)
    strides = [int(np.prod(shape[i + 1 :])) for i in range(len(shape))]
    us, vs = [], []
    for off in _offsets(len(shape) - 1):
        s = sum(o * st for o, st in zip(off, strides[1:]))
        # Runs A (earlier row) and B (later row) of one value touch iff A's first pixel has B at
        # its lower left, or B's first pixel has A above or at its upper left: from each run's
        # first pixel one position per offset is tested, so the work follows runs, not pixels.
        from_a = off[-1] == -1
        pa = idx if from_a else idx - s
        ok = (pa >= 0) & (pa + s < flat.size)
        for axis, o in enumerate(off, start=1):
            if o == 0 and not (axis == 1 and carry is not None):
                continue
            c = (pa // strides[axis]) % shape[axis]
            if o:
                ok &= (c + o >= 0) & (c + o < shape[axis])
            else:  # pairs inside the carried plane were joined in the previous block
                ok &= c >= 1
        known = np.flatnonzero(ok)
        pa = pa[known]
        same = flat[pa] == flat[pa + s]
        known, pa = known[same], pa[same]
        other = np.searchsorted(idx, pa + s if from_a else pa, side="right") - 1
        us.append(known if from_a else other)
        vs.append(other if from_a else known)
    if carry is not None:
        objs, n_objs = carry  # runs of plane 0 that belong to one object become one node
        first = np.empty(n_objs, np.int64)
        first[objs[::-1]] = np.arange(len(objs) - 1, -1, -1)
        us.append(np.arange(len(objs)))
        vs.append(first[objs])
    u = np.concatenate(us)
    v = np.concatenate(vs)
    graph = csr_matrix((np.ones(len(u), np.int8), (u, v)), shape=(n, n))
    n_comp, comp = connected_components(graph, directed=False)
    code = np.empty(n_comp, np.int64)
    code[comp] = (idx // strides[0]) * n_values + flat[idx]
    done = np.ones(n_comp, bool)
    new_carry = None
    if not last:
        tail = int(np.searchsorted(idx, (shape[1] - 1) * strides[1]))  # first run of the last plane
        done[comp[tail:]] = False
        kept, inverse = np.unique(comp[tail:], return_inverse=True)
        new_carry = (inverse.astype(np.int64), len(kept))
    counts = np.bincount(code[done], minlength=shape[0] * n_values).reshape(shape[0], n_values)
    return counts, new_carry


def count_objects(
    maps: np.ndarray, n_values: int, *, select: Sequence[int] | None = None, block_elements: int = BLOCK_ELEMENTS
) -> np.ndarray:
    """Connected objects of every value of each of a stack of integer label maps (full
    connectivity: 8 neighbours in 2D, 26 in 3D).

    Args:
        maps: (M, H, W) or (M, D, H, W) non-negative integer maps (values < ``n_values``).
        n_values: values counted per map.
        select: the maps to count (default all), read in place: a large stack is never copied.
        block_elements: elements read at a time (bounds the memory): small maps are solved
            several at once, a large map plane block by plane block.

    Returns:
        (len(select), n_values) int64: objects of each value in each selected map (0 for absent
        values).
    """
    if maps.ndim < 3:
        raise ValueError(f"count_objects needs a stack of 2D or 3D maps, got shape {maps.shape}")
    select = list(range(maps.shape[0]) if select is None else select)
    M = len(select)
    size = int(np.prod(maps.shape[1:]))
    counts = np.zeros((M, n_values), np.int64)
    if size == 0:
        return counts
    if size <= block_elements:
        per = max(1, block_elements // size)
        for m0 in range(0, M, per):
            block = maps[select[m0 : m0 + per]]  # a copy of at most block_elements
            counts[m0 : m0 + per] = _block_objects(block, n_values, None, True)[0]
        return counts
    plane = size // maps.shape[1]
    step = max(1, block_elements // plane)
    for i, m in enumerate(select):
        carry, prev = None, None
        for z0 in range(0, maps.shape[1], step):
            z1 = min(maps.shape[1], z0 + step)
            part = maps[m, z0:z1] if prev is None else np.concatenate([prev[None], maps[m, z0:z1]])
            last = z1 == maps.shape[1]
            found, carry = _block_objects(part[None], n_values, carry, last)
            counts[i] += found[0]
            prev = None if last else np.array(maps[m, z1 - 1])
    return counts
