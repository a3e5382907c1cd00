"""The model-grid resize of an input slice: one matrix product per axis against ndimage's filters.

`SlicePlan.forward` shrinks every slice to the model's 128² grid: a Gaussian blur of
σ = ¼ · (n / 128), then linear interpolation (`pancakes_data.preprocess`). It was
``ndimage.gaussian_filter`` then ``ndimage.zoom``, which blurs the whole full-size image; it is now
W · image · Wᵀ with the sparse (128 × n) weights W of blur and interpolation together
(`resample_matrix`), equal to float32 rounding (a test), and a non-square slice is no longer padded
to a square copy first (`resize_to_square`). Per slice size: median time of each route and the
largest temporary each allocates beside its input (tracemalloc's peak). Runs both routes in this
process, so the ratio is taken on the same machine and moment. Writes the pancakes-data README block.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
from _common import ROOT, timeit, write_block

from pancakes_data.preprocess import _resize_separable, pad_to_square, resize_to_square

SIZE = 128
CASES = {"256²": (256, 256), "1024²": (1024, 1024), "700 × 1100 (a microscopy field)": (700, 1100),
         "4000²": (4000, 4000), "9000 × 4000": (9000, 4000)}  # fmt: skip


def _peak_mb(fn) -> float:
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def main() -> None:
    rng = np.random.default_rng(0)
    rows, data = [], {}
    for name, shape in CASES.items():
        x = rng.random(shape, dtype=np.float32)
        routes = {
            "filters": lambda x=x: _resize_separable(pad_to_square(x), SIZE),
            "matrices": lambda x=x: resize_to_square(x, SIZE),
        }
        big = x.size > 4_000_000
        t = {k: timeit(fn, repeat=3 if big else 9, warmup=1) for k, fn in routes.items()}
        mem = {k: _peak_mb(fn) for k, fn in routes.items()}
        diff = float(np.abs(routes["filters"]() - routes["matrices"]()).max())
        rows.append(
            f"| {name} | {t['filters'] * 1e3:.1f} ms | {t['matrices'] * 1e3:.1f} ms | "
            f"{t['filters'] / t['matrices']:.1f}× | {mem['filters']:.0f} MB | {mem['matrices']:.1f} MB | {diff:.1e} |"
        )
        data[name] = {"seconds": t, "peak_mb": mem, "max_abs_diff": diff}
    body = "\n".join(
        [
            f"One slice in [0, 1] to the {SIZE}² grid; time: median after a warm-up; temporary: the largest "
            "extra memory the route allocates (tracemalloc); difference: the largest absolute difference "
            "of the two results.",
            "",
            "| slice | filters (before) | matrices (now) | speed-up | temporary, filters | temporary, matrices "
            "| difference |",
            "|---|---|---|---|---|---|---|",
            *rows,
        ]
    )
    write_block(ROOT / "packages" / "pancakes-data" / "README.md", body, name="bench_resize", data=data)


if __name__ == "__main__":
    main()
