"""``pancakes segment``: a collection of any size, input by input, into M consistent protocols.

All inputs of one call form the set: label k of protocol m means the same structure in every
input. Inputs are read, prepared, segmented and written one at a time into ``OUT/.partial/``
(:mod:`pancakes_model.app.outdir`): memory does not grow with the number of inputs, and an
interrupted run continues with ``--resume`` where it stopped, writing the same bytes. Output layout
(other tools depend on it):

    OUT/labels/<stem>_m{m:02d}.<ext>    label maps in the input's own format and grid
                                        (PNG for pictures; NIfTI, NRRD, MHA as the input; NIfTI for
                                        DICOM series; OME-TIFF for microscopy stacks)
    OUT/labels/labels.txt               ITK-SNAP label description (the overview's palette)
    OUT/overview.png                    protocols (rows) × inputs (columns), labels over images
    OUT/report.html                     self-contained page: protocols side by side + statistics
    OUT/stats.csv                       input,protocol,label,count,area_mm2,volume_ml,objects,area_um2,volume_um3
    OUT/run.json                        versions, model hash, M, K, protocols kept, inputs — written last

Beyond ``MAX_SHOWN`` inputs, the overview and the report show that many, evenly spread over the
inputs in their order; stats.csv covers every input.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pancakes_data.io import (
    MAX_PIXELS,
    ImageData,
    ReadError,
    collect_inputs,
    peek_kind,
    read_input,
    write_bytes,
    write_labels,
)
from pancakes_model.app.outdir import OutputError, OutputFolder
from pancakes_model.app.stats import STATS_COLUMNS, label_stats
from pancakes_model.inference.predict import predict_array
from pancakes_model.network import Pancakes, check_mk

__all__ = ["AXES", "MAX_SHOWN", "InputError", "run_segment"]

AXES = {"sagittal": 0, "coronal": 1, "axial": 2}
MAX_SHOWN = 24  # inputs drawn in overview.png / report.html (statistics cover every input)
MAX_M, MAX_K = 256, 65536  # K labels must fit the uint16 label files; M the overview and file names
TILE = 128


class InputError(ValueError):
    """A problem with the user's input (reported with exit code 2, no traceback)."""


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_mk_limits(M: int, K: int) -> None:
    try:
        check_mk(M, K)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    if M > MAX_M:
        raise InputError(f"-M {M} is too many protocols (at most {MAX_M})")
    if K > MAX_K:
        raise InputError(f"-K {K} labels cannot be stored in 16-bit label files (at most {MAX_K})")


def check_device(device: str) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InputError(f"--device {device!r} is not a device torch knows (use cpu or cuda)") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {device}: CUDA is not available in this torch build")
    if dev.type not in ("cpu", "cuda"):
        raise InputError(f"--device {device!r}: use cpu or cuda")
    return dev


def shown_indices(n: int, limit: int = MAX_SHOWN) -> list[int]:
    """Which inputs the overview shows: all, or ``limit`` evenly spread over them."""
    if n <= limit:
        return list(range(n))
    return sorted({round(i) for i in np.linspace(0, n - 1, limit)})


@dataclass
class _Job:
    """What one input's segmentation needs (everything but the model is plain data)."""

    M: int
    K: int
    keep: list[int]
    axis: int
    device: str
    batch: int
    partial: Path


def _display(item: ImageData, norm: np.ndarray, axis: int) -> np.ndarray:
    """The 2D picture shown for an input: itself, or a volume's middle slice (superior/anterior up)."""
    if item.kind == "2d":
        return norm
    return np.rot90(np.take(norm, norm.shape[axis] // 2, axis=axis))


def _preview(item: ImageData, norm: np.ndarray, labels: np.ndarray, keep: list[int], axis: int) -> bytes:
    """The input's overview column (see ``render.column_tiles``), as a small npz."""
    from pancakes_model.app.render import column_tiles

    img = _display(item, norm, axis)
    lab = labels[keep]
    if item.kind == "3d":
        mid = np.take(lab, lab.shape[axis + 1] // 2, axis=axis + 1)
        lab = np.stack([np.rot90(m) for m in mid])
    buf = io.BytesIO()
    np.savez(buf, tiles=column_tiles(img, list(lab), tile=TILE))
    return buf.getvalue()


def segment_one(job: _Job, model: Pancakes, item: ImageData) -> tuple[np.ndarray, np.ndarray]:
    """Predict one input: its label maps (M, *shape) on its own grid, and its normalised data."""
    from pancakes_model.inference.predict import model_preprocess

    norm = model_preprocess(model).normalize(item.data, modality=item.modality)
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
    )
    return labels, norm


def write_one(job: _Job, item: ImageData, labels: np.ndarray, norm: np.ndarray, *, show: bool) -> dict:
    """Write one input's label files, statistics and preview into the partial folder; returns its
    done-record. Runs in a writer thread beside the next input's inference (zlib, nibabel's gzip,
    SimpleITK and most of numpy release the GIL)."""
    names = [f"labels/{item.stem}_m{m:02d}{item.label_suffix}" for m in job.keep]
    for m, name in zip(job.keep, names):
        write_labels(item, labels[m], job.partial / name, atomic=False)  # done.jsonl marks them complete
    rows = label_stats(item.path.name, labels, job.keep, K=job.K, spacing=item.spacing, unit=item.unit)
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


def _check_like(like: str | Path, M: int, K: int, model_hash: str) -> None:
    ref_path = Path(like) / "run.json" if Path(like).is_dir() else Path(like)
    if not ref_path.is_file():
        raise InputError(f"--like: no run.json at {ref_path}")
    try:
        ref = json.loads(ref_path.read_text(encoding="utf-8"))
        if not isinstance(ref, dict):
            raise ValueError("not a JSON object")
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"--like: {ref_path} is not a pancakes run.json ({exc})") from exc
    diffs = [
        f"{k}: earlier {ref.get(k)!r}, now {v!r}"
        for k, v in (("M", M), ("K", K), ("model_sha256", model_hash))
        if ref.get(k) != v
    ]
    if diffs:
        raise InputError(
            "protocol numbers are defined by (M, K, model), and this run differs from "
            f"{ref_path}: " + "; ".join(diffs) + ". Use the same -M, -K and --model."
        )


def _versions() -> dict:
    import importlib.metadata as md

    out = {}
    for pkg in ("pancakes-model", "pancakes-data", "torch", "numpy", "nibabel", "pillow", "torchio"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


def run_segment(
    inputs: Sequence[str | Path],
    out: str | Path,
    *,
    M: int = 8,
    K: int = 20,
    model_path: str | Path = "default",
    axis: str = "axial",
    device: str = "cpu",
    force: bool = False,
    resume: bool = False,
    protocols: Sequence[int] | None = None,
    like: str | Path | None = None,
    max_pixels: int = MAX_PIXELS,
    channel: int | str | None = None,
    series: Sequence[str] | None = None,
    batch: int = 4,
    progress: bool = True,
    log: Callable[[str], None] = lambda m: print(m, file=sys.stderr),
) -> dict:
    """The ``pancakes segment`` command as a function; returns run.json's content."""
    from tqdm.auto import tqdm

    t_start = time.perf_counter()
    check_mk_limits(M, K)
    if axis not in AXES:
        raise InputError(f"--axis must be one of {sorted(AXES)}, got {axis!r}")
    check_device(device)
    if max_pixels < 4:
        raise InputError(f"--max-pixels must be at least 4, got {max_pixels}")
    keep = sorted(set(protocols)) if protocols else list(range(M))
    bad = [m for m in keep if not 0 <= m < M]
    if bad:
        raise InputError(f"--protocol {bad} out of range: protocols are numbered 0..{M - 1}")
    from pancakes_model.network import resolve

    try:
        weights = resolve(model_path)
    except FileNotFoundError as exc:
        raise InputError(f"cannot load model {model_path}: {exc}") from exc
    model_hash = sha256(weights)
    if like is not None:
        _check_like(like, M, K, model_hash)
    try:
        refs = collect_inputs(inputs, series=series, log=log)
    except ReadError as exc:
        raise InputError(str(exc)) from exc
    if len({peek_kind(r) for r in refs} - {"unknown"}) > 1:
        raise InputError("the set mixes 2D images and 3D volumes; segment them in separate calls")
    dirs = [p for p in inputs if Path(p).exists()]
    try:
        with OutputFolder(out, inputs=dirs, force=force, resume=resume) as folder:
            try:
                model = Pancakes.from_pretrained(weights).set_memory_format("channels_last")
            except (FileNotFoundError, ValueError) as exc:
                raise InputError(f"cannot load model {model_path}: {exc}") from exc
            if str(device) != "cpu":
                model = model.to(device)
            manifest = {
                "format": "pancakes-segment-partial/1",
                "M": M,
                "K": K,
                "protocols": keep,
                "model_sha256": model_hash,
                "axis": axis,
                "inputs": [_fingerprint(r) for r in refs],
            }
            done = folder.start(manifest)
            shown = set(shown_indices(len(refs)))
            job = _Job(M, K, keep, AXES[axis], device, batch, folder.partial)
            kinds = {row["input"]["kind"] for row in done.values()}
            bar = tqdm(total=len(refs), disable=not progress, unit="input", desc="segmenting", dynamic_ncols=True)
            bar.update(sum(1 for r in refs if _stem(r) in done))
            t_infer = time.perf_counter()
            # 2D inputs run side by side, one torch thread each: measured 1.35× faster on 2 cores
            # than one input at a time on two threads (small tensors scale poorly across threads).
            # Volumes run one at a time with every thread on their slices. Each input is segmented
            # on its own either way, so its files never depend on the others.
            cores = max(1, torch.get_num_threads())
            parallel = cores > 1 and "3d" not in {peek_kind(r) for r in refs}
            workers = cores if parallel else 1
            pending: deque = deque()

            def one(i: int, ref) -> dict:
                try:
                    item = read_input(ref, max_pixels=max_pixels, channel=channel)
                except ReadError as exc:
                    raise InputError(str(exc)) from exc
                _check_item(item)
                for note in item.notes:
                    (bar.write if progress else log)(f"note: {note}")
                labels, norm = segment_one(job, model, item)
                return write_one(job, item, labels, norm, show=i in shown)

            def settle(limit: int) -> None:
                while len(pending) > limit:
                    row = pending.popleft().result()
                    kinds.add(row["input"]["kind"])
                    if len(kinds) > 1:
                        raise InputError("the set mixes 2D images and 3D volumes; segment them in separate calls")
                    folder.record(row["input"]["stem"], row["files"], input=row["input"], notes=row["notes"])
                    bar.update(1)

            threads_before = torch.get_num_threads()
            if parallel:
                torch.set_num_threads(1)
            try:
                with ThreadPoolExecutor(workers) as pool:
                    try:
                        for i, ref in enumerate(refs):
                            if _stem(ref) not in done:
                                pending.append(pool.submit(one, i, ref))
                                settle(workers)  # bounded: memory does not grow with the inputs
                    finally:
                        # what was computed is kept (recorded in input order), even after a failure
                        first_error = None
                        while pending:
                            try:
                                settle(len(pending) - 1)
                            except BaseException as exc:  # keep settling the others first
                                first_error = first_error or exc
                        if first_error is not None:
                            raise first_error
            finally:
                torch.set_num_threads(threads_before)
            bar.close()
            t_write = time.perf_counter()
            meta = _finish(folder, refs, shown, keep, M, K, str(model_path), weights, model_hash, axis, device, log)
            meta["timings_s"] = {
                "startup_and_model": round(t_infer - t_start, 3),
                "segment_and_write": round(t_write - t_infer, 3),
                "overview_report_stats": round(time.perf_counter() - t_write, 3),
                "total": round(time.perf_counter() - t_start, 3),
            }
            folder.finish(meta)
    except OutputError as exc:
        raise InputError(str(exc)) from exc
    return meta


def _stem(ref) -> str:
    from pancakes_data.io import ref_name

    return ref_name(ref)


def _fingerprint(ref) -> dict:
    """An input as the partial manifest knows it: path, size and mtime (a changed file is noticed)."""
    from pancakes_data.io import DicomSeries

    if isinstance(ref, DicomSeries):
        stat = [(f.stat().st_size, f.stat().st_mtime_ns) for f in ref.files]
        return {
            "series": ref.uid,
            "files": len(ref.files),
            "size": sum(s for s, _ in stat),
            "mtime": max(m for _, m in stat),
        }
    st = Path(ref).stat()
    return {"file": str(Path(ref).resolve()), "size": st.st_size, "mtime": st.st_mtime_ns}


def _check_item(item: ImageData) -> None:
    shape = item.data.shape
    if min(shape) < 2:
        raise InputError(f"{item.path}: image is {'×'.join(map(str, shape))} pixels; at least 2 per side needed")
    if not np.all(np.isfinite(item.data)):
        item.notes.append(f"{item.path.name}: NaN/inf values replaced by 0")
        np.nan_to_num(item.data, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    if float(item.data.max()) == float(item.data.min()):
        item.notes.append(f"{item.path.name}: constant image; its label maps are not meaningful")


def _finish(folder: OutputFolder, refs, shown, keep, M, K, model_name, weights, model_hash, axis, device, log) -> dict:
    """Overview, report, labels.txt and stats.csv from what the inputs left in the partial folder."""
    from pancakes_data.io import write_text
    from pancakes_model.app.render import assemble_grid, encode_png, itksnap_labels
    from pancakes_model.app.report import render_report

    partial = folder.partial
    records = [folder.done[_stem(r)] for r in refs]
    if len(refs) > MAX_SHOWN:
        log(f"note: overview and report show {len(shown)} of {len(refs)} inputs, evenly spread; stats.csv has all")
    previews = []
    for i in sorted(shown):
        with np.load(partial / f"previews/{records[i]['stem']}.npz") as z:
            previews.append((records[i]["stem"], z["tiles"]))
    grid = assemble_grid([p[1] for p in previews], titles=[p[0] for p in previews])
    png = encode_png(grid, workers=2)
    write_bytes(partial / "overview.png", png)
    header = ",".join(STATS_COLUMNS) + "\n"
    shown_names = {records[i]["input"]["file"] for i in shown}
    shown_rows = []
    with (partial / "stats.csv").open("w", newline="") as fh:  # streamed: one input's rows at a time
        fh.write(header)
        for rec in records:
            text = (partial / f"stats/{rec['stem']}.csv").read_text(encoding="utf-8")
            fh.write(text)
            if rec["input"]["file"] in shown_names:
                shown_rows += list(csv.DictReader(io.StringIO(header + text)))
    write_text(partial / "labels" / "labels.txt", itksnap_labels(K))
    meta = {
        "format": "pancakes-segment/1",
        "M": M,
        "K": K,
        "protocols": keep,
        "model": model_name,
        "model_file": str(weights),
        "model_sha256": model_hash,
        "axis": axis,
        "device": str(device),
        "inputs": [rec["input"] for rec in records],
        "shown": [records[i]["stem"] for i in sorted(shown)],
        "versions": _versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    columns = [c for c in STATS_COLUMNS if any(r.get(c) not in ("", None) for r in shown_rows)]
    page = render_report(
        stems=[p[0] for p in previews],
        overview_png=png,
        stats_rows=shown_rows,
        columns=columns or list(STATS_COLUMNS),
        protocols=keep,
        meta=meta,
        n_inputs=len(refs),
    )
    write_text(partial / "report.html", page)
    return meta
