"""On-disk synthetic datasets: safetensors shards + a JSON manifest, written atomically, resumable.

Layout of ``OUT``::

    manifest.json                 n pairs, set size, seed, source, generator version, parameters,
                                  shard list, status ("running" | "complete")
    shard-00000.safetensors       images (n_sets, S, H, W) float16 in [0, 1]
                                  labels (n_sets, S, H, W) uint8 (uint16 when ids exceed 255)
                                  n_labels (n_sets,) int32
                                  classes (n_sets, L_max) int32: class of every label, −1 past
                                  n_labels (see SynthSet.classes)
    ...

Shard k holds sets ``k·shard_sets … (k+1)·shard_sets − 1``; set i is a pure function of
(seed, i), so a resumed run regenerates exactly what a killed run did not finish. Each shard is
written to a temporary name and renamed, so a shard file either is complete or does not exist.
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from tqdm.auto import tqdm

from pancakes_data.io import atomic_write, write_text
from pancakes_synth.__about__ import __version__
from pancakes_synth.anatomix import SetGenerator
from pancakes_synth.recipe import Generator
from pancakes_synth.shardset import MANIFEST, ShardDataset, shard_name
from pancakes_synth.sources import DEFAULT_BANK
from pancakes_synth.specs import open_source

__all__ = ["generate_dataset", "make_generator", "save_sorted"]

# ---------------------------------------------------------------------------- writing
_WORKER: dict = {}


def make_generator(source, *, set_size: int, seed: int, cache_dir=None, bank_size: int = DEFAULT_BANK) -> Generator:
    """A generator from a spec string (see :mod:`pancakes_synth.specs`) or a label source object."""
    if not isinstance(source, str):
        return SetGenerator(source, set_size=set_size, seed=seed)
    gen = open_source(source, set_size=set_size, seed=seed, cache_dir=cache_dir, bank_size=bank_size)
    if isinstance(gen, ShardDataset) or not isinstance(gen, Generator):
        raise ValueError(f"{source!r} is already a shard dataset; generate from a generator source")
    return gen


def _init_worker(source, set_size: int, seed: int, cache_dir=None, bank_size=DEFAULT_BANK, counter=None) -> None:
    torch.set_num_threads(1)  # one process per core is faster than threads for small ops
    gen = make_generator(source, set_size=set_size, seed=seed, cache_dir=cache_dir, bank_size=bank_size)
    gen.prepare()  # build (or load) what every set draws from, once per worker
    _WORKER.update(gen=gen, counter=counter, init=(source, set_size, seed, cache_dir, bank_size))


def _dask_shard(job: tuple[str, int, int, int], init: tuple) -> tuple[int, int]:
    """:func:`_make_shard` as a Dask task: the generator is built once per worker process."""
    if _WORKER.get("init") != init:
        _init_worker(*init)
    return _make_shard(job)


_DTYPES = {"float16": "F16", "float32": "F32", "uint8": "U8", "uint16": "U16", "int32": "I32", "int64": "I64"}


def save_sorted(tensors: dict[str, np.ndarray], path: Path, metadata: dict[str, str]) -> None:
    """A safetensors file with its header keys in sorted order, so the same tensors give the same
    bytes in every run (the safetensors library writes its metadata in hash order)."""
    offset, entries, blobs = 0, {}, []
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        raw = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        entries[name] = {
            "dtype": _DTYPES[arr.dtype.name],
            "shape": list(arr.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        blobs.append(raw)
        offset += len(raw)
    header = json.dumps({"__metadata__": dict(sorted(metadata.items())), **entries}, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)  # the data start on an 8-byte boundary, as the format asks
    with path.open("wb") as fh:
        fh.write(len(header).to_bytes(8, "little"))
        fh.write(header)
        for raw in blobs:
            fh.write(raw)


def _make_shard(args: tuple[str, int, int, int]) -> tuple[int, int]:
    out, k, first, count = args
    gen = _WORKER["gen"]
    size = gen.size
    # Filled set by set in the stored dtypes: stacking the sets first (labels as int64) and
    # converting afterwards moved ~200 MB per shard and cost ~2–4 ms per set, 10–20 % of
    # generating it.
    images = np.empty((count, gen.set_size, size, size), np.float16)
    labels = np.empty((count, gen.set_size, size, size), np.uint8)
    n_labels = np.empty(count, np.int32)
    classes: list[np.ndarray] = []
    for j, index in enumerate(range(first, first + count)):
        synth = gen.generate(index)
        if synth.n_labels > 256 and labels.dtype == np.uint8:
            labels = labels.astype(np.uint16)  # ids beyond 255 (many split components): rare
        images[j] = synth.images
        labels[j] = synth.labels
        n_labels[j] = synth.n_labels
        if _WORKER.get("counter") is not None:  # the progress bar counts sets, not whole shards
            with _WORKER["counter"].get_lock():
                _WORKER["counter"].value += 1
        classes.append(np.arange(synth.n_labels) if synth.classes is None else np.asarray(synth.classes))
    table = np.full((count, max(len(c) for c in classes)), -1, np.int32)
    for j, c in enumerate(classes):
        table[j, : len(c)] = c
    tensors = {"images": images, "labels": labels, "n_labels": n_labels, "classes": table}
    meta = {"first_set": str(first), "n_sets": str(count)}
    atomic_write(Path(out) / shard_name(k), lambda p: save_sorted(tensors, p, meta))  # the user's umask
    return k, count


def _valid_shard(path: Path, count: int, set_size: int, size: int) -> bool:
    try:
        with safe_open(str(path), framework="np") as fh:
            shape = fh.get_slice("images").get_shape()
            return list(shape) == [count, set_size, size, size] and int(fh.metadata()["n_sets"]) == count
    except Exception:  # unreadable header: treat as missing and regenerate
        return False


def generate_dataset(
    out: str | Path,
    *,
    n: int,
    set_size: int = 5,
    source="procedural",
    seed: int = 0,
    workers: int | None = None,
    resume: bool = False,
    force: bool = False,
    shard_sets: int = 200,
    cache_dir: str | Path | None = None,
    bank_size: int = DEFAULT_BANK,
    progress: bool = True,
    client=None,
    log: Callable[[str], None] = lambda m: print(m, file=sys.stderr),
) -> dict:
    """Generate ``n`` image/label pairs in sets of ``set_size`` into ``out``.

    ``client``: a ``distributed.Client``: shards become tasks on its cluster (OUT on a file system
    the workers see); set i is a pure function of (seed, i), so the shards are the local run's.

    Returns the manifest (also written to ``out/manifest.json``).

    Raises:
        ValueError: bad arguments, a non-empty ``out`` without ``resume``/``force``, or a
            ``resume`` whose parameters differ from the interrupted run.
    """
    if n < 1:
        raise ValueError(f"--n must be >= 1, got {n}")
    if set_size < 1:
        raise ValueError(f"--set-size must be >= 1, got {set_size}")
    if shard_sets < 1:
        raise ValueError(f"shard_sets must be >= 1, got {shard_sets}")
    if resume and force:
        raise ValueError("--resume and --force exclude each other")
    # A spec string or a label source object; opening validates it before anything is written.
    gen = make_generator(source, set_size=set_size, seed=seed, cache_dir=cache_dir, bank_size=bank_size)
    size = gen.size
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a directory")
    n_sets = math.ceil(n / set_size)
    if n_sets * set_size != n:
        log(
            f"note: {n} pairs is not a multiple of set size {set_size}; "
            f"generating {n_sets} sets = {n_sets * set_size} pairs"
        )
    plan = {
        "format": "pancakes-synth/1",
        "generator_version": __version__,
        "n_pairs": n_sets * set_size,
        "n_sets": n_sets,
        "set_size": set_size,
        "image_size": size,
        "seed": seed,
        "source": gen.spec,
        "shard_sets": shard_sets,
        "parameters": json.loads(json.dumps(gen.parameters())),
    }
    manifest_path = out / MANIFEST
    existing = sorted(out.iterdir()) if out.is_dir() else []
    if existing and resume:
        if not manifest_path.is_file():
            raise ValueError(f"--resume: {out} has no {MANIFEST}; it is not a pancakes-synth output")
        old = json.loads(manifest_path.read_text(encoding="utf-8"))
        diff = {k: (old.get(k), v) for k, v in plan.items() if old.get(k) != v}
        if diff:
            raise ValueError(f"--resume: {out} was generated with different parameters: {diff}")
    elif existing and not force:
        raise ValueError(
            f"--out {out} is not empty; pass --resume to finish an interrupted run or --force to replace it"
        )
    elif existing and force:
        ours = [p for p in existing if p.name == MANIFEST or p.name.startswith(("shard-", ".tmp-"))]
        others = [p.name for p in existing if p not in ours]
        if others:
            raise ValueError(
                f"--force: {out} holds files pancakes-synth did not write ({others[:5]}); refusing to delete them"
            )
        for p in ours:
            p.unlink()
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ValueError(f"--out {out} is not writable: {exc.strerror or exc}") from exc
    for tmp in [*out.glob(".tmp-*-shard-*"), *out.glob("shard-*.tmp*")]:  # leftovers of killed runs (any version)
        tmp.unlink()

    n_shards = math.ceil(n_sets / shard_sets)
    jobs = []
    done_pairs = 0
    for k in range(n_shards):
        first = k * shard_sets
        count = min(shard_sets, n_sets - first)
        path = out / shard_name(k)
        if path.is_file() and _valid_shard(path, count, set_size, size):
            done_pairs += count * set_size
            continue
        jobs.append((str(out), k, first, count))
    manifest = {**plan, "status": "running", "shards": [shard_name(k) for k in range(n_shards)]}
    write_text(manifest_path, json.dumps(manifest, indent=2))
    if done_pairs:
        log(f"resuming: {done_pairs} pairs already on disk, {len(jobs)} shard(s) to go")

    workers = max(1, workers if workers is not None else min(os.cpu_count() or 1, 8))
    bar = tqdm(total=n_sets * set_size, initial=done_pairs, disable=not progress, unit="pair", dynamic_ncols=True)
    t0 = time.perf_counter()
    init = (source, set_size, seed, cache_dir, bank_size)
    if client is not None:
        from distributed import as_completed

        for future in as_completed(client.map(_dask_shard, jobs, init=init, pure=False)):
            bar.update(future.result()[1] * set_size)
    elif workers == 1 or len(jobs) <= 1:
        _init_worker(*init)
        for job in jobs:
            bar.update(_make_shard(job)[1] * set_size)
    else:
        ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
        counter = ctx.Value("q", 0)
        with ctx.Pool(min(workers, len(jobs)), initializer=_init_worker, initargs=(*init, counter)) as pool:
            results = pool.imap_unordered(_make_shard, jobs)
            for _ in jobs:
                while True:
                    try:
                        results.next(timeout=0.5)
                        break
                    except mp.TimeoutError:
                        bar.update(done_pairs + counter.value * set_size - bar.n)  # sets finished so far
            bar.update(done_pairs + counter.value * set_size - bar.n)
    bar.close()
    manifest.update(
        status="complete",
        seconds=round(time.perf_counter() - t0, 2),
        bytes=sum((out / s).stat().st_size for s in manifest["shards"]),
    )
    write_text(manifest_path, json.dumps(manifest, indent=2))
    return manifest
