"""Shared helpers of the benchmark scripts: timing, machine description, README blocks.

Every benchmark writes the figures it measured into a README between
``<!-- <script name>:start -->`` and ``<!-- <script name>:end -->`` markers (never typed by hand),
and a JSON file under ``benchmarks/results/``.
"""

from __future__ import annotations

import atexit
import datetime as _dt
import json
import os
import platform
import resource
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def scratch(prefix: str) -> Path:
    """A temporary folder removed when the script exits, failed or not (cases write gigabytes)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def machine() -> str:
    """One line naming the CPU, core count and Python, so figures are read in context."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu}, {cores} cores available, Python {platform.python_version()}"


def timeit(fn: Callable[[], object], *, repeat: int = 7, warmup: int = 2) -> float:
    """Median wall time in seconds of ``fn()`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def write_block(readme: Path, body: str, *, name: str, data: dict, command: str = "", where: str = "") -> None:
    """Replace the ``<!-- {name}:start -->`` … ``<!-- {name}:end -->`` block of ``readme``
    and save ``data`` as JSON; the footer names ``command`` (default: ``benchmarks/{name}.py``) and
    ``where`` it was measured (default: this machine)."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d")
    footer = f"_Measured {stamp} on {where or machine()} by `{command or f'benchmarks/{name}.py'}`._"
    start_m, end_m = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = readme.read_text(encoding="utf-8")
    if start_m not in text or end_m not in text:
        raise ValueError(f"{readme} has no {start_m} … {end_m} block")
    start, end = text.index(start_m) + len(start_m), text.index(end_m)
    readme.write_text(text[:start] + f"\n{body.rstrip()}\n\n{footer}\n" + text[end:], encoding="utf-8")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps({"machine": where or machine(), "date": stamp, **data}, indent=2))
    print(body)
