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
    OUT/masks/<stem>.<ext>              with a match (``--match``, ``pancakes match``): the chosen structure
    OUT/match.json                      with a match: the choice, its ranking, model SHA-256, M, K
    OUT/run.json                        versions, model hash, M, K, protocols kept, inputs — written last
                                        (and the set's summary, for a model with a set-context branch)

Beyond ``MAX_SHOWN`` inputs, the overview and the report show that many, evenly spread over the
inputs in their order; stats.csv covers every input.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib.metadata as md
import io
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from pancakes_data.io import (
    MAX_PIXELS,
    ArrayInput,
    DicomSeries,
    collect_inputs,
    peek_kind,
    ref_name,
    write_bytes,
    write_text,
)
from pancakes_model.app.common import (
    AXES,
    MAX_SHOWN,
    InputError,
    check_device,
    check_mk_limits,
    check_same_run,
    shown_indices,
)
from pancakes_model.app.execution import run_dask, run_local, set_context
from pancakes_model.app.matchfile import load_match, match_record
from pancakes_model.app.outdir import OutputFolder
from pancakes_model.app.report import render_report
from pancakes_model.app.stats import STATS_COLUMNS
from pancakes_model.app.work import Job
from pancakes_model.inference.matching import MatchResult
from pancakes_model.network import Pancakes, resolve, sha256
from pancakes_model.network.weights import WeightsError
from pancakes_model.render import assemble_grid, encode_png, itksnap_labels

__all__ = ["run_segment"]


def _check_like(like: str | Path, M: int, K: int, model_hash: str) -> dict:
    ref_path = Path(like) / "run.json" if Path(like).is_dir() else Path(like)
    if not ref_path.is_file():
        raise InputError(f"--like: no run.json at {ref_path}")
    try:
        ref = json.loads(ref_path.read_text(encoding="utf-8"))
        if not isinstance(ref, dict):
            raise ValueError("not a JSON object")
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"--like: {ref_path} is not a pancakes run.json ({exc})") from exc
    check_same_run(ref, M=M, K=K, model_sha256=model_hash, flag="--like", source=ref_path)
    return ref


def _versions() -> dict:
    out = {}
    for pkg in ("pancakes-model", "pancakes-data", "torch", "numpy", "nibabel", "pillow", "torchio"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


def run_segment(
    inputs: Sequence[str | Path | ArrayInput],
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
    client=None,
    match: str | Path | MatchResult | None = None,
    examples: Sequence[str | Path] = (),
    model: Pancakes | None = None,
    context: Sequence[float] | None = None,
    progress: bool = True,
    log: Callable[[str], None] = lambda m: print(m, file=sys.stderr),
) -> dict:
    """The ``pancakes segment`` command as a function (also ``pancakes_model.segment_collection``);
    returns run.json's content.

    Args:
        inputs: image files, folders, DICOM folders, in-memory images (:class:`ArrayInput`; one set).
        out: the output folder (see the module docstring).
        client: a ``distributed.Client`` — every input becomes a task on its cluster (see
            :mod:`pancakes_model.app.execution`); the files are byte-identical to a local run's.
        match: a choice to apply (``OUT/masks``): an earlier ``match.json`` or the
            :class:`MatchResult` of ``pancakes match``; OUT gets its ``match.json``.
        examples: the annotated files behind ``match`` (recorded; OUT may not overlap them).
        model: the loaded weights of ``model_path`` when the caller has them already.
        context: the set's summary when the caller has it (a model with a set-context branch;
            otherwise it is gathered from the inputs first, or taken from ``like``'s run, so that
            new inputs are segmented as part of that earlier set).
    """
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
    try:
        weights = resolve(model_path)
    except WeightsError as exc:
        raise InputError(f"cannot load model {model_path}: {exc}") from exc
    model_hash = sha256(weights)
    earlier_context = None
    if like is not None:
        earlier_context = _check_like(like, M, K, model_hash).get("set_context")
    chosen = match_json = None
    if match is not None:
        found = match if isinstance(match, MatchResult) else load_match(match, M=M, K=K, model_sha256=model_hash)
        if found.protocol not in keep:
            raise InputError(f"--match chose protocol {found.protocol}, which --protocol {sorted(keep)} leaves out")
        chosen = (found.protocol, tuple(sorted(found.assignment.items())))
        earlier = [] if isinstance(match, MatchResult) else [match]
        match_json = match_record(found, M=M, K=K, model=str(model_path), model_sha256=model_hash,
                              examples=[*examples, *earlier])  # fmt: skip
    refs = collect_inputs(inputs, series=series, log=log)
    if len({peek_kind(r) for r in refs} - {"unknown"}) > 1:
        raise InputError("the set mixes 2D images and 3D volumes; segment them in separate calls")
    dirs = [p for p in [*inputs, *examples] if not isinstance(p, ArrayInput) and Path(p).exists()]
    with OutputFolder(out, inputs=dirs, force=force, resume=resume) as folder:
        # loaded here also with a cluster: a bad model file is found before any task
        if model is None:
            try:
                model = Pancakes.from_pretrained(weights).set_memory_format("channels_last")
            except WeightsError as exc:
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
            "match": list(chosen[1]) if chosen else None,
            "inputs": [_fingerprint(r) for r in refs],
        }
        done = folder.start(manifest)
        job = Job(
            M=M,
            K=K,
            keep=tuple(keep),
            axis=AXES[axis],
            device=device,
            batch=batch,
            partial=folder.partial,
            shown=frozenset(shown_indices(len(refs))),
            max_pixels=max_pixels,
            channel=channel,
            model_file=str(Path(weights).resolve()),
            model_sha256=model_hash,
            match=chosen,
        )
        if model.context is not None:  # every input's share, done ones included: a resumed run gets the same
            if earlier_context is not None and not _valid_context(earlier_context, 2 * model.config.features):
                raise InputError(f"--like: the set_context of {like} is not {2 * model.config.features} finite numbers")
            if context is None:
                context = earlier_context
            if context is None:
                context = set_context(job, model, refs, client, parallel="3d" not in {peek_kind(r) for r in refs})
            job = dataclasses.replace(job, context=tuple(float(v) for v in context))
        kinds = {row["input"]["kind"] for row in done.values()}
        bar = tqdm(total=len(refs), disable=not progress, unit="input", desc="segmenting", dynamic_ncols=True)
        bar.update(sum(1 for r in refs if _stem(r) in done))
        t_infer = time.perf_counter()

        def record(row: dict) -> None:
            for note in row["notes"]:
                (bar.write if progress else log)(f"note: {note}")
            kinds.add(row["input"]["kind"])
            if len(kinds) > 1:
                raise InputError("the set mixes 2D images and 3D volumes; segment them in separate calls")
            folder.record(row["input"]["stem"], row["files"], input=row["input"], notes=row["notes"])
            bar.update(1)

        todo = [(i, r) for i, r in enumerate(refs) if _stem(r) not in done]
        if client is not None:
            run_dask(job, client, todo, record)
        else:
            run_local(job, model, todo, record, parallel="3d" not in {peek_kind(r) for r in refs})
        bar.close()
        t_write = time.perf_counter()
        meta = _finish(
            folder, refs, set(job.shown), keep, M, K, str(model_path), weights, model_hash, axis, device, log,
            match_json,
        )  # fmt: skip
        if job.context is not None:
            meta["set_context"] = list(job.context)
        counts = model.config.label_counts(M, K)
        if any(c < K for c in counts):  # a model with coarse protocols (PancakesConfig.label_caps)
            meta["labels_per_protocol"] = [counts[m] for m in keep]
        meta["timings_s"] = {
            "startup_and_model": round(t_infer - t_start, 3),
            "segment_and_write": round(t_write - t_infer, 3),
            "overview_report_stats": round(time.perf_counter() - t_write, 3),
            "total": round(time.perf_counter() - t_start, 3),
        }
        folder.finish(meta)
    return meta


def _valid_context(value, size: int) -> bool:
    return (
        isinstance(value, list)
        and len(value) == size
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in value)
    )


def _stem(ref) -> str:
    return ref_name(ref)


def _fingerprint(ref) -> dict:
    """An input as the partial manifest knows it: path, size and mtime (a changed file is noticed);
    an in-memory image by its pixels' SHA-256."""
    if isinstance(ref, ArrayInput):
        return {"array": ref.stem, "shape": list(np.shape(ref.data)), "sha256": ref.sha256()}
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


def _finish(
    folder: OutputFolder, refs, shown, keep, M, K, model_name, weights, model_hash, axis, device, log, match
) -> dict:
    """Overview, report, labels.txt, stats.csv (and match.json) from what the inputs left in the
    partial folder."""
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
    if match is not None:
        write_text(partial / "match.json", json.dumps(match, indent=1))
        meta["match"] = {k: match[k] for k in ("protocol", "assignment", "score", "warning")}
    columns = [c for c in STATS_COLUMNS if any(r.get(c) not in ("", None) for r in shown_rows)]
    page = render_report(
        stems=[p[0] for p in previews],
        overview_png=png,
        stats_rows=shown_rows,
        columns=columns or list(STATS_COLUMNS),
        protocols=keep,
        meta=meta,
        n_inputs=len(refs),
        match=match,
    )
    write_text(partial / "report.html", page)
    return meta
