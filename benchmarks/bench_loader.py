"""Benchmark the DataLoader routes of a training batch: what the training process receives per
second and what receiving costs its CPU, with nothing training beside it.

Three arms, batches of 32 sets of the store's real datasets (cheap to make, so the route decides),
2 workers, alternating fresh loaders, 3 rounds of 15 s each:

- ``workers``: the workers augment (``data.augment_on = "workers"``; CPU training's route);
- ``device``: the workers draw the augmentation parameters and join them into one tensor per
  parameter (``pancakes_data.set_augment.join_params``), the training device applies them;
- ``device, per-set arrays``: the same, the parameters left as the per-set numpy arrays they were
  before ``join_params`` (~50 MB a batch, pickled through the workers' pipes).

Needs the store (``nox -s data``); writes the ``bench_loader`` block of the pancakes-data README.
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import time
from unittest import mock

import torch
from _common import ROOT, write_block

import pancakes_data.sampler as sampler_module
from pancakes_data import SamplerConfig, SetSampler, Source, Store

SECONDS, ROUNDS, WORKERS, BATCH = 15.0, 3, 2, 32
DATASETS = ("nuclei-cho", "bacteria-phase", "nuclei-bbbc007", "brain-deepmriprep")


def measure(sources: list[Source], *, defer: bool, joined: bool = True) -> tuple[float, float]:
    """(batches/s, ms of this process's CPU per batch) over SECONDS after two warm-up batches."""
    cfg = SamplerConfig(set_size=(2, 5), batch_size=BATCH, split="train", seed=0, defer_augmentation=defer)
    keep = contextlib.nullcontext()
    patch = keep if joined else mock.patch.object(sampler_module, "join_params", lambda params: params)
    with patch:  # the workers fork inside: they inherit the patched module
        loader = iter(
            torch.utils.data.DataLoader(SetSampler(sources, config=cfg), batch_size=None, num_workers=WORKERS)
        )
        next(loader), next(loader)
        n, t0, c0 = 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - t0 < SECONDS:
            next(loader)
            n += 1
        rate, cpu = n / (time.perf_counter() - t0), (time.process_time() - c0) / n
        del loader
    return rate, 1000 * cpu


def main() -> int:
    store_dir = ROOT / "data" / "store"
    store = {d.name: d for d in Store(store_dir)} if store_dir.is_dir() else {}
    missing = [name for name in DATASETS if name not in store]
    if missing:
        print(f"bench_loader: the store {store_dir} lacks {missing}; build it with `nox -s data`")
        return 0
    torch.set_num_threads(1)
    sources = [Source(f"store:{name}", store[name]) for name in DATASETS]
    arms = {
        "workers": {"defer": False},
        "device": {"defer": True},
        "device, per-set arrays (before `join_params`)": {"defer": True, "joined": False},
    }
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in arms}
    for _ in range(ROUNDS):
        for name, kw in arms.items():
            runs[name].append(measure(sources, **kw))
    rows = {name: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v)) for name, v in runs.items()}
    lines = [
        f"Batches of {BATCH} sets ({', '.join(DATASETS)}; S = 2–5, 128²), {WORKERS} workers, nothing training "
        f"beside the loader; medians of {ROUNDS} alternating rounds of {SECONDS:.0f} s.",
        "",
        "| route | batches/s | training process's CPU per batch |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {rate:.2f} | {cpu:.0f} ms |" for name, (rate, cpu) in rows.items()]
    old, new = rows["device, per-set arrays (before `join_params`)"], rows["device"]
    lines += ["", f"Joining the parameters in the workers: {new[0] / old[0]:.1f}× the batches per second."]
    write_block(ROOT / "packages" / "pancakes-data" / "README.md", "\n".join(lines), name="bench_loader", data=runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
