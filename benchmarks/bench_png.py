"""PNG encoding: our zlib writer against Pillow (compress_level=1) and imagecodecs.

The encode step alone, on what `pancakes segment` writes: label maps of 256² (the common case) and
2048², and an overview picture. Issue 12's rule: switch to a library when it takes ≤ 1.2× our time
(and `bench_segment` loses < 5 %). Libraries that are not installed are left out of the table.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import ROOT, timeit, write_block

from pancakes_data.io import encode_png


def cases():
    rng = np.random.default_rng(0)
    small = np.repeat(np.repeat(rng.integers(0, 20, (16, 16)), 16, 0), 16, 1).astype(np.uint8)
    big = np.repeat(np.repeat(rng.integers(0, 20, (64, 64)), 32, 0), 32, 1).astype(np.uint8)
    yy, xx = np.indices((1186, 1074))
    overview = np.stack([(yy * 7 + xx) % 256, (xx * 3) % 256, (yy // 4) % 256], axis=2).astype(np.uint8)
    return {
        "label map 256²": (small, True),
        "label map 2048²": (big, True),
        "overview 1074×1186 RGB": (overview, False),
    }


def encoders():
    from PIL import Image

    def pillow(a, labels):
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="PNG", compress_level=1)
        return buf.getvalue()

    out = {"ours (zlib, no filter)": lambda a, labels: encode_png(a, labels=labels), "Pillow level 1": pillow}
    try:
        import imagecodecs

        out["imagecodecs level 1"] = lambda a, labels: imagecodecs.png_encode(a, level=1)
    except ImportError:
        pass
    # pyspng (0.1.x on PyPI) only decodes: it has no encoder to compare.
    return out


def main() -> None:
    rows, data = [], {}
    enc = encoders()
    for case, (arr, labels) in cases().items():
        base = None
        for name, fn in enc.items():
            t = timeit(lambda fn=fn, arr=arr, labels=labels: fn(arr, labels), repeat=9, warmup=2)
            size = len(fn(arr, labels))
            base = base or t
            rows.append(f"| {case} | {name} | {t * 1000:.2f} ms | {t / base:.2f}× | {size / 1e3:.0f} kB |")
            data[f"{case}|{name}"] = {"seconds": t, "bytes": size, "ratio": t / base}
    body = "\n".join(
        [
            "Encode step alone (median of 9 after warm-up); ratio to our encoder in the same run.",
            "",
            "| picture | encoder | time | ratio | size |",
            "|---|---|---|---|---|",
            *rows,
        ]
    )
    write_block(ROOT / "packages" / "pancakes-data" / "README.md", body, name="bench_png", data=data)


if __name__ == "__main__":
    main()
