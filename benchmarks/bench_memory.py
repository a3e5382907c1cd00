"""Peak memory of `pancakes segment` (M = 8, K = 20), each case in a fresh process (ru_maxrss).

Targets (issues 13 and 14): any 2D image up to Pillow's decompression-bomb limit (89.5 M pixels)
in ≤ 2 GB; a 512³ volume in ≤ 3 GB; a collection of 300 volumes of 128×128×64 in ≤ 1.5 GB (the
peak does not grow with the number of inputs). Writes the table into packages/pancakes-model/README.md.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _common import ROOT, scratch, write_block

DRIVER = """
import resource, sys, torch
torch.set_num_threads(2)
from pancakes_model.app.segment import run_segment
run_segment(sys.argv[2:], sys.argv[1], M=8, K=20, progress=False, log=lambda m: None)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak(out: Path, inputs: list[Path]) -> tuple[float, float]:
    t = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", DRIVER, str(out), *map(str, inputs)], capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"bench_memory: the case {out.name} failed (exit {res.returncode}):\n{res.stderr[-3000:]}")
    return int(res.stdout.strip().splitlines()[-1]) / 1024**2, time.perf_counter() - t  # GB, s


def picture(path: Path, side: int) -> Path:
    from PIL import Image

    yy, xx = np.ogrid[:side, :side]
    img = ((np.sin(yy / side * 40) * np.cos(xx / side * 31) > 0.3) * 150 + 60).astype(np.uint8)
    Image.fromarray(img).save(path)
    return path


def volume(path: Path, shape: tuple[int, int, int], seed: int) -> Path:
    import nibabel as nib

    rng = np.random.default_rng(seed)
    zz, yy, xx = np.ogrid[: shape[0], : shape[1], : shape[2]]
    vol = np.full(shape, 30, np.uint8)
    for _ in range(6):
        c = rng.uniform(0.2, 0.8, 3) * np.asarray(shape)
        r = rng.uniform(0.08, 0.2) * min(shape)
        vol[((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2) < r * r] = rng.integers(80, 250)
    nib.save(nib.Nifti1Image(vol, np.eye(4)), path)
    return path


def main() -> None:
    # `python bench_memory.py N`: the large collection has N volumes (default 300, the target's size)
    n_vols = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    tmp = scratch("bench-memory-")
    rows, data = [], {}
    load = [os.getloadavg()[0]]
    for side, target in ((4000, 2.0), (9000, 2.0)):
        gb, s = peak(tmp / f"o{side}", [picture(tmp / f"p{side}.png", side)])
        label = f"one PNG of {side}×{side} ({side * side / 1e6:.0f} M pixels)"
        rows.append(f"| {label} | {gb:.2f} GB | ≤ {target} GB | {s:.0f} s |")
        data[f"png_{side}"] = {"peak_gb": gb, "seconds": s}
    gb, s = peak(tmp / "o512", [volume(tmp / "v512.nii.gz", (512, 512, 512), 0)])
    rows.append(f"| one NIfTI volume of 512³ (uint8) | {gb:.2f} GB | ≤ 3 GB | {s:.0f} s |")
    data["volume_512"] = {"peak_gb": gb, "seconds": s}
    vols = tmp / "vols"
    vols.mkdir()
    files = [volume(vols / f"v{i:03d}.nii.gz", (128, 128, 64), i) for i in range(n_vols)]
    gb20, s20 = peak(tmp / "o20", files[:20])
    gb_n, s_n = peak(tmp / "on", files)
    rows.append(f"| 20 volumes of 128×128×64 | {gb20:.2f} GB | | {s20:.0f} s |")
    target = "≤ 1.5 GB" if n_vols >= 300 else "(the target is for 300)"
    rows.append(f"| {n_vols} volumes of 128×128×64 | {gb_n:.2f} GB | {target} | {s_n:.0f} s |")
    data.update(volumes_20={"peak_gb": gb20, "seconds": s20}, volumes_n={"n": n_vols, "peak_gb": gb_n, "seconds": s_n})
    load.append(os.getloadavg()[0])
    data["load_average"] = load
    busy = load[0] > 0.5 * (os.cpu_count() or 1)  # before its own work (which loads the cores itself)
    body = "\n".join(
        [
            "Peak resident memory of a fresh `pancakes segment` process (M = 8, K = 20, 2 threads):",
            "",
            "| input | peak RSS | target | time |",
            "|---|---|---|---|",
            *rows,
            "",
            f"{os.cpu_count()} cores; 1-minute load average {load[0]:.1f} at the start, {load[1]:.1f} at the end"
            + (" (other work shared the machine: the times are not speed figures, the peaks stand)." if busy else "."),
        ]
    )
    write_block(ROOT / "packages" / "pancakes-model" / "README.md", body, name="bench_memory", data=data)


if __name__ == "__main__":
    main()
