"""One input's work: read it, segment it, write its files into the partial folder.

The same function runs in this process (threads) and on Dask workers; an input is always segmented
on its own (its only link to the other inputs is the set's summary in ``Job.context``, for a model
with a set-context branch), so where it runs never changes its files. Everything a worker needs travels in a
:class:`Job` (plain data); the model is loaded once per process and checked by its SHA-256.
"""

from __future__ import annotations

import csv
import io
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from pancakes_data import UserError
from pancakes_data.io import MAX_PIXELS, ImageData, read_input, write_bytes, write_labels
from pancakes_model.app.stats import STATS_COLUMNS, label_stats
from pancakes_model.inference.predict import predict_array, summarize_array
from pancakes_model.network import Pancakes, sha256
from pancakes_model.render import column_tiles

__all__ = [
    "Job",
    "WorkError",
    "load_model",
    "run_input",
    "run_input_on_worker",
    "summarize_input",
    "summarize_input_on_worker",
]

TILE = 128  # side of an input's tiles in the overview


class WorkError(UserError):
    """A problem with one input (the message names it; reported with exit code 2)."""


@dataclass(frozen=True)
class Job:
    """Everything one input's segmentation needs besides the model."""

    M: int
    K: int
    keep: tuple[int, ...]
    axis: int
    device: str
    batch: int
    partial: Path
    shown: frozenset[int] = field(default_factory=frozenset)
    max_pixels: int = MAX_PIXELS
    channel: int | str | None = None
    model_file: str = ""
    model_sha256: str = ""
    match: tuple | None = None  # (protocol, ((value, labels), …)) of a match.json to apply
    context: tuple[float, ...] | None = None  # the set's summary, for a model with a set-context branch


_MODELS: dict[tuple[str, str], Pancakes] = {}
_LOCK = threading.Lock()


def load_model(path: str, digest: str) -> Pancakes:
    """The model of ``path`` for this process (loaded once; refused if its SHA-256 differs: a
    worker must use exactly the client's model, or protocol numbers would differ)."""
    key = (path, digest)
    with _LOCK:
        if key not in _MODELS:
            if sha256(Path(path)) != digest:
                raise WorkError(f"the model file {path} on this worker differs from the client's (SHA-256)")
            _MODELS[key] = Pancakes.from_pretrained(path).set_memory_format("channels_last")
        return _MODELS[key]


def check_item(item: ImageData) -> None:
    """Refuse images too small to segment; note NaN/inf (replaced by 0) and constant images."""
    shape = item.data.shape
    if min(shape) < 2:
        raise WorkError(f"{item.path}: image is {'×'.join(map(str, shape))} pixels; at least 2 per side needed")
    if not np.all(np.isfinite(item.data)):
        item.notes.append(f"{item.path.name}: NaN/inf values replaced by 0")
        np.nan_to_num(item.data, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    if float(item.data.max()) == float(item.data.min()):
        item.notes.append(f"{item.path.name}: constant image; its label maps are not meaningful")


def display_image(item: ImageData, norm: np.ndarray, axis: int) -> np.ndarray:
    """The 2D picture shown for an input: itself, or a volume's middle slice (superior/anterior up)."""
    if item.kind == "2d":
        return norm
    return np.rot90(np.take(norm, norm.shape[axis] // 2, axis=axis))


def _preview(item: ImageData, norm: np.ndarray, labels: np.ndarray, keep, axis: int) -> bytes:
    """The input's overview column (see ``render.column_tiles``), as a small npz."""
    img = display_image(item, norm, axis)
    lab = [labels[m] for m in keep]  # views: a copy of the kept maps would be image-sized
    if item.kind == "3d":
        lab = [np.rot90(np.take(m, m.shape[axis] // 2, axis=axis)) for m in lab]
    buf = io.BytesIO()
    np.savez(buf, tiles=column_tiles(img, lab, tile=TILE))
    return buf.getvalue()


def segment_one(job: Job, model: Pancakes, item: ImageData) -> tuple[np.ndarray, np.ndarray]:
    """Predict one input: its label maps (M, *shape) on its own grid, and its normalised data.

    The input's data are normalised in their own memory (nothing later needs the raw values), so a
    512³ volume costs one float32 copy, not two."""
    norm = model.preprocess.normalize(item.data, modality=item.modality, inplace=True)
    labels = predict_array(
        model,
        item.data,
        M=job.M,
        K=job.K,
        spacing=item.spacing,
        axis=job.axis,
        modality=item.modality,
        batch=job.batch,
        device=job.device,
        normalized=norm,
        context=None if job.context is None else np.asarray(job.context),
    )
    return labels, norm


def write_one(job: Job, item: ImageData, labels: np.ndarray, norm: np.ndarray, *, show: bool) -> dict:
    """Write one input's label files, statistics and preview; returns its done-record."""
    names = [f"labels/{item.stem}_m{m:02d}{item.label_suffix}" for m in job.keep]
    for m, name in zip(job.keep, names):
        write_labels(item, labels[m], job.partial / name, atomic=False)  # done.jsonl marks them complete
    if job.match is not None:
        protocol, assignment = job.match
        mask = np.zeros(labels.shape[1:], np.uint8 if max(v for v, _ in assignment) < 256 else np.uint16)
        for value, ks in assignment:
            mask[np.isin(labels[protocol], ks)] = value
        (job.partial / "masks").mkdir(exist_ok=True)
        names.append(f"masks/{item.stem}{item.label_suffix}")
        write_labels(item, mask, job.partial / names[-1], atomic=False)
    rows = label_stats(item.path.name, labels, list(job.keep), K=job.K, spacing=item.spacing, unit=item.unit)
    out = io.StringIO()
    csv.DictWriter(out, fieldnames=list(STATS_COLUMNS)).writerows(rows)
    files = [*names, f"stats/{item.stem}.csv"]
    (job.partial / "stats").mkdir(exist_ok=True)
    write_bytes(job.partial / files[-1], out.getvalue().encode())
    if show:
        (job.partial / "previews").mkdir(exist_ok=True)
        files.append(f"previews/{item.stem}.npz")
        write_bytes(job.partial / files[-1], _preview(item, norm, labels, job.keep, job.axis))
    return {
        "files": files,
        "input": {
            "file": str(item.path),
            "stem": item.stem,
            "kind": item.kind,
            "format": item.format,
            "shape": list(item.data.shape),
            "spacing": list(item.spacing) if item.spacing else None,
            "unit": item.unit,
        },
        "notes": item.notes,
    }


def run_input(job: Job, model: Pancakes, index: int, ref) -> dict:
    """Read, segment and write input ``index``; returns its done-record (with its notes)."""
    item = read_input(ref, max_pixels=job.max_pixels, channel=job.channel)
    check_item(item)
    labels, norm = segment_one(job, model, item)
    return write_one(job, item, labels, norm, show=index in job.shown)


def summarize_input(job: Job, model: Pancakes, index: int, ref) -> dict:
    """Input ``index``'s share of the set summary (model with a set-context branch): the float64 sum
    of its slices' descriptions and their number (:func:`~pancakes_model.inference.predict.summarize_array`)."""
    item = read_input(ref, max_pixels=job.max_pixels, channel=job.channel)
    check_item(item)
    norm = model.preprocess.normalize(item.data, modality=item.modality, inplace=True)
    total, count = summarize_array(
        model, item.data, spacing=item.spacing, axis=job.axis, batch=job.batch, device=job.device, normalized=norm
    )
    return {"index": index, "sum": total.tolist(), "count": count}


def summarize_input_on_worker(job: Job, index: int, ref) -> dict:
    """:func:`summarize_input` on a Dask worker (as :func:`run_input_on_worker`)."""
    torch.set_num_threads(1)
    return summarize_input(job, load_model(job.model_file, job.model_sha256), index, ref)


def run_input_on_worker(job: Job, index: int, ref) -> dict:
    """:func:`run_input` on a Dask worker: the model from the shared file system, cached per worker;
    one torch thread per task (the worker's threads run tasks side by side)."""
    torch.set_num_threads(1)
    return run_input(job, load_model(job.model_file, job.model_sha256), index, ref)
