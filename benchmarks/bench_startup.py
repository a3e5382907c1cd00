"""Benchmark how fast the `pancakes` command answers in a fresh process (issue 22 item 3).

Medians of 5 fresh processes each, interleaved so all arms see the same machine noise:
``pancakes --version``, every sub-command's ``--help``, a bare ``python -c "import torch"`` and
``pancakes segment`` on one 256×256 PNG. Targets: ``--version`` and every ``--help`` ≤ 0.3 s; the
one-PNG segment ≤ bare ``import torch`` + 1 s. Writes the table into packages/pancakes-model/README.md.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _common import ROOT, scratch, write_block
from PIL import Image

RUNS = 5
COMMANDS = ("segment", "match", "finetune", "train", "evaluate", "export")


def pancakes_exe() -> list[str]:
    """The installed console script beside this Python (what a user types), else ``-m``."""
    exe = Path(sys.executable).with_name("pancakes")
    if exe.is_file():
        return [str(exe)]
    found = shutil.which("pancakes")
    return [found] if found else [sys.executable, "-m", "pancakes_model"]


def wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    tmp = scratch("bench-startup-")
    rng = np.random.default_rng(0)
    png = tmp / "one.png"
    Image.fromarray(rng.integers(0, 255, (256, 256), dtype=np.uint8)).save(png)
    exe = pancakes_exe()
    arms: dict[str, list[str]] = {
        "pancakes --version": [*exe, "--version"],
        **{f"pancakes {c} --help": [*exe, c, "--help"] for c in COMMANDS},
        'bare python -c "import torch"': [sys.executable, "-c", "import torch"],
    }
    times: dict[str, list[float]] = {k: [] for k in [*arms, "pancakes segment one 256² PNG"]}
    for r in range(RUNS):
        for name, cmd in arms.items():
            times[name].append(wall(cmd))
        out = tmp / f"out{r}"
        times["pancakes segment one 256² PNG"].append(wall([*exe, "segment", str(png), "--out", str(out), "--quiet"]))
    med = {k: statistics.median(v) for k, v in times.items()}
    torch_s = med['bare python -c "import torch"']
    seg_s = med["pancakes segment one 256² PNG"]
    helps = [k for k in med if k.startswith("pancakes ") and ("--help" in k or "--version" in k)]
    worst = max(med[k] for k in helps)
    rows = [f"| `{k}` | {med[k]:.2f} s | {'≤ 0.3 s' if k in helps else ''} |" for k in helps]
    lines = [
        f"Fresh processes, median of {RUNS} each (interleaved):",
        "",
        "| command | wall | target |",
        "|---|---|---|",
        *rows,
        f'| bare `python -c "import torch"` | {torch_s:.2f} s | |',
        f"| `pancakes segment` one 256² PNG | {seg_s:.2f} s = import torch + {seg_s - torch_s:.2f} s | "
        "≤ import torch + 1 s |",
        "",
        f"Slowest `--version`/`--help`: {worst:.2f} s (target ≤ 0.3 s: {'met' if worst <= 0.3 else 'NOT met'}); "
        f"segment − import torch: {seg_s - torch_s:.2f} s (target ≤ 1 s: "
        f"{'met' if seg_s - torch_s <= 1 else 'NOT met'}).",
    ]
    write_block(
        ROOT / "packages" / "pancakes-model" / "README.md",
        "\n".join(lines),
        name="bench_startup",
        data={"runs_s": times, "median_s": med},
    )


if __name__ == "__main__":
    main()
