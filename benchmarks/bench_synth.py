"""Benchmark pancakes-synth: generation rate (pairs/s) per source with 2 workers, disk per pair.

Target (issue #4): ≥ 400 pairs/s on 2 cores at set size 5 with the procedural source, i.e.
120,000 pairs in ≤ 5 minutes. Banks are built (and cached) before timing; the rate counts
generation and shard writing. Writes the table into packages/pancakes-synth/README.md.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from _common import ROOT, scratch, write_block

from pancakes_synth import LabelMapSource, ProceduralSource, TotalSegmentatorSource, generate_dataset

N = 4000


def fake_volumes(root: Path) -> tuple[Path, Path]:
    """A small TotalSegmentator-style tree and a multi-label map directory (random ellipsoids)."""
    rng = np.random.default_rng(0)
    zz, yy, xx = np.indices((64, 64, 64))
    ts, lab = root / "ts", root / "labels"
    for subj in range(3):
        seg = ts / f"s{subj:04d}" / "segmentations"
        seg.mkdir(parents=True)
        atlas = np.zeros((64, 64, 64), np.int16)
        for k in range(1, 25):
            c, r = rng.uniform(12, 52, 3), rng.uniform(3, 12, 3)
            m = (((zz - c[0]) / r[0]) ** 2 + ((yy - c[1]) / r[1]) ** 2 + ((xx - c[2]) / r[2]) ** 2) <= 1
            nib.save(nib.Nifti1Image(m.astype(np.uint8), np.eye(4)), seg / f"structure_{k}.nii.gz")
            atlas[m] = k
        lab.mkdir(exist_ok=True)
        nib.save(nib.Nifti1Image(atlas, np.eye(4)), lab / f"atlas{subj}.nii.gz")
    return ts, lab


def main() -> None:
    tmp = scratch("bench-synth-")
    try:
        ts, lab = fake_volumes(tmp)
        cache = tmp / "cache"
        sources = {
            "procedural (default)": ProceduralSource(cache_dir=cache),
            "totalseg (3 fake subjects × 24 masks)": TotalSegmentatorSource(ts, cache_dir=cache),
            "labels (3 multi-label maps)": LabelMapSource(lab, cache_dir=cache),
        }
        rows, data = [], {}
        for name, src in sources.items():
            t0 = time.perf_counter()
            src.bank(0)  # build + cache once (as a second run would find it)
            bank_s = time.perf_counter() - t0
            out = tmp / f"out-{len(rows)}"
            t0 = time.perf_counter()
            m = generate_dataset(
                out, n=N, set_size=5, source=src, seed=0, workers=2, progress=False, log=lambda _: None
            )
            dt = time.perf_counter() - t0
            rate = N / dt
            per_pair = m["bytes"] / N
            rows.append(
                f"| {name} | {rate:.0f} | {120000 / rate / 60:.1f} min | {bank_s:.1f} s | {per_pair / 1e3:.1f} kB |"
            )
            data[name] = {"pairs_per_s": rate, "bank_build_s": bank_s, "bytes_per_pair": per_pair}
            shutil.rmtree(out)
        proc = data["procedural (default)"]
        lines = [
            f"{N} pairs, set size 5, 128×128, 2 worker processes; rate includes writing shards.",
            "",
            "| source | pairs/s | 120,000 pairs | bank build (first run only) | disk per pair |",
            "|---|---|---|---|---|",
            *rows,
            "",
            f"120,000 pairs take about {proc['bytes_per_pair'] * 120000 / 1e9:.1f} GB on disk "
            "(images float16, labels uint8).",
            f"Target ≥ 400 pairs/s (procedural): {'met' if proc['pairs_per_s'] >= 400 else 'NOT met'}.",
        ]
        write_block(ROOT / "packages" / "pancakes-synth" / "README.md", "\n".join(lines), name="bench_synth", data=data)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
