"""``pancakes match``: one annotated example picks the structure, applied to the whole collection.

    pancakes match INPUT... --example IMAGE --mask MASK --out OUT [-M 8] [-K 20] [--multi-label]

Writes (OUT follows the design of :mod:`pancakes_model.app.outdir`: lock, partial, run.json last):

    OUT/masks/<stem>.<ext>   the chosen structure of every input, in the input's own format and grid
                             (0/1; with --multi-label the mask's own values)
    OUT/match.json           the ranking with scores, the chosen protocol and labels, model SHA-256, M, K
    OUT/stats.csv            input,protocol,label,count,area_mm2,volume_ml,objects,area_um2,volume_um3
    OUT/overview.png         examples then inputs as columns: image, mask / result, the next candidates
    OUT/report.html          the same, with the ranking and the statistics
    OUT/run.json             written last

``pancakes segment … --match OUT/match.json`` applies the same choice to new images later.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from pancakes_data.io import (
    MAX_PIXELS,
    ReadError,
    collect_inputs,
    read_image,
    read_input,
    read_labels,
    write_bytes,
    write_labels,
)
from pancakes_model.app.outdir import OutputError, OutputFolder
from pancakes_model.app.segment import InputError, check_device, check_mk_limits, sha256, shown_indices
from pancakes_model.app.stats import STATS_COLUMNS, label_stats
from pancakes_model.app.work import Job, WorkError, check_item, display_image, segment_one
from pancakes_model.inference.matching import WARN_BELOW, MatchResult, rank_candidates
from pancakes_model.network import Pancakes, resolve

__all__ = ["load_match", "read_mask", "run_match"]


def read_mask(path: str | Path, *, multi_label: bool, shape: tuple[int, ...]) -> np.ndarray:
    """An annotation mask as integers, checked against its example's shape and the binary rule."""
    try:
        item = read_labels(path)
    except ReadError as exc:
        raise InputError(str(exc)) from exc
    data = item.data
    if data.shape != shape:
        raise InputError(f"--mask {path} has shape {data.shape}, its example {shape}; they must match")
    values = np.unique(data)
    if not np.all(values == np.rint(values)):
        raise InputError(f"--mask {path} has non-integer values such as {values[values != np.rint(values)][0]}")
    mask = data.astype(np.int64)
    nonzero = [int(v) for v in values if v != 0]
    if not nonzero:
        raise InputError(f"--mask {path} is empty: draw the structure to find")
    if not multi_label:
        if len(nonzero) > 1:
            raise InputError(
                f"--mask {path} holds the values {nonzero[:6]}: a binary mask holds 0 and one value; "
                "pass --multi-label for several structures"
            )
        mask = (mask != 0).astype(np.int64)
    return mask


def load_match(path: str | Path, *, M: int, K: int, model_sha256: str) -> MatchResult:
    """A ``match.json`` to reuse; refused when M, K or the model differ (protocols would differ)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        diffs = [
            f"{k}: match {data.get(k)!r}, now {v!r}"
            for k, v in (("M", M), ("K", K), ("model_sha256", model_sha256))
            if data.get(k) != v
        ]
        assignment = {int(v): tuple(int(k) for k in ks) for v, ks in data["assignment"].items()}
        protocol, score = int(data["protocol"]), float(data["score"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise InputError(f"--match: {p} is not a pancakes match.json ({exc})") from exc
    if diffs:
        raise InputError(f"--match: {p} was made with another model or M/K ({'; '.join(diffs)}); use the same ones")
    return MatchResult(protocol, assignment, score, [])


def _column(image: np.ndarray, maps: list[np.ndarray]) -> np.ndarray:
    from pancakes_model.app.render import column_tiles

    return column_tiles(image, maps)


def run_match(
    inputs: Sequence[str | Path],
    out: str | Path,
    *,
    examples: Sequence[str | Path],
    masks: Sequence[str | Path],
    M: int = 8,
    K: int = 20,
    model_path: str | Path = "default",
    multi_label: bool = False,
    axis: str = "axial",
    device: str = "cpu",
    force: bool = False,
    max_pixels: int = MAX_PIXELS,
    channel: int | str | None = None,
    progress: bool = True,
    log: Callable[[str], None] = lambda m: print(m, file=sys.stderr),
) -> dict:
    """The ``pancakes match`` command as a function; returns run.json's content."""
    from pancakes_model.app.segment import AXES

    t0 = time.perf_counter()
    check_mk_limits(M, K)
    check_device(device)
    if not examples or len(examples) != len(masks):
        raise InputError(f"give as many --mask as --example (got {len(examples)} and {len(masks)})")
    try:
        weights = resolve(model_path)
    except FileNotFoundError as exc:
        raise InputError(f"cannot load model {model_path}: {exc}") from exc
    ex_items = []
    for e, m in zip(examples, masks):
        try:
            item = read_image(e, max_pixels=max_pixels, channel=channel)
        except ReadError as exc:
            raise InputError(str(exc)) from exc
        check_item(item)
        ex_items.append((item, read_mask(m, multi_label=multi_label, shape=item.data.shape)))
    try:
        refs = collect_inputs(inputs, log=log)
    except ReadError as exc:
        raise InputError(str(exc)) from exc
    model_hash = sha256(weights)
    watched = [p for p in [*inputs, *examples, *masks] if Path(p).exists()]
    try:
        with OutputFolder(out, inputs=watched, force=force, resume=False, kind="match") as folder:
            model = Pancakes.from_pretrained(weights).set_memory_format("channels_last")
            folder.start({"format": "pancakes-match-partial/1", "M": M, "K": K, "model_sha256": model_hash})
            job = Job(M=M, K=K, keep=tuple(range(M)), axis=AXES[axis], device=device, batch=4, partial=folder.partial)
            ex_maps = [segment_one(job, model, item) for item, _ in ex_items]
            protocol, assignment, score, ranking = rank_candidates(
                [lab for lab, _ in ex_maps], [m for _, m in ex_items], K=K
            )
            result = MatchResult(protocol, assignment, score, ranking)
            if score < WARN_BELOW:
                result.warning = f"no candidate matches your example well (best Dice {score:.2f}); try larger M or K"
                log(f"warning: {result.warning}")
            others = [c for c in ranking if (c.protocol, c.labels) != (protocol, assignment.get(c.structure or 1))][:2]

            def show(lab: np.ndarray) -> list[np.ndarray]:
                return [result.apply(lab), *[np.isin(lab[c.protocol], c.labels).astype(np.uint8) for c in others]]

            columns, titles, stats_rows = [], [], []
            for (item, mask), (lab, norm) in zip(ex_items, ex_maps):
                columns.append(_column(display_image(item, norm, job.axis), [mask.astype(np.uint8), *show(lab)]))
                titles.append(f"example {item.stem}")
            (folder.partial / "masks").mkdir(exist_ok=True)
            shown = set(shown_indices(len(refs)))
            from tqdm.auto import tqdm

            for i, ref in enumerate(tqdm(refs, disable=not progress, unit="input", desc="matching")):
                try:
                    item = read_input(ref, max_pixels=max_pixels, channel=channel)
                except ReadError as exc:
                    raise InputError(str(exc)) from exc
                check_item(item)
                lab, norm = segment_one(job, model, item)
                chosen = result.apply(lab)
                name = f"masks/{item.stem}{item.label_suffix}"
                write_labels(item, chosen, folder.partial / name, atomic=False)
                rows = label_stats(
                    item.path.name, chosen[None], [0], K=int(chosen.max()) + 1, spacing=item.spacing, unit=item.unit
                )
                for r in rows:
                    r["protocol"] = protocol
                stats_rows += [r for r in rows if r["label"] != 0]
                folder.record(item.stem, [name], input={"file": str(item.path), "stem": item.stem})
                if i in shown:
                    columns.append(_column(display_image(item, norm, job.axis), [chosen, *show(lab)[1:]]))
                    titles.append(item.stem)
            meta = _write_outputs(
                folder, result, columns, titles, stats_rows, M, K, model_path, model_hash, ex_items, refs
            )
            meta["timings_s"] = {"total": round(time.perf_counter() - t0, 3)}
            folder.finish(meta)
    except OutputError as exc:
        raise InputError(str(exc)) from exc
    except WorkError as exc:
        raise InputError(str(exc)) from exc
    return meta


def _write_outputs(folder, result, columns, titles, stats_rows, M, K, model_path, model_hash, ex_items, refs) -> dict:
    from string import Template

    from pancakes_data.io import write_text
    from pancakes_model.app.render import assemble_grid, encode_png

    partial = folder.partial
    match = {
        "format": "pancakes-match/1",
        "M": M,
        "K": K,
        "model": str(model_path),
        "model_sha256": model_hash,
        "protocol": result.protocol,
        "assignment": {str(v): list(ks) for v, ks in result.assignment.items()},
        "score": round(result.score, 6),
        "warning": result.warning,
        "examples": [str(item.path) for item, _ in ex_items],
        "ranking": [
            {"protocol": c.protocol, "labels": list(c.labels), "score": round(c.score, 6), "structure": c.structure}
            for c in result.ranking
        ],
    }
    write_text(partial / "match.json", json.dumps(match, indent=1))
    rows = max(c.shape[0] for c in columns)
    columns = [np.concatenate([c, np.full((rows - c.shape[0], *c.shape[1:]), 255, np.uint8)]) for c in columns]
    png = encode_png(assemble_grid(columns, titles=titles), workers=2)
    write_bytes(partial / "overview.png", png)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(STATS_COLUMNS))
    w.writeheader()
    w.writerows(stats_rows)
    write_text(partial / "stats.csv", buf.getvalue())
    import base64
    import html

    ranking = "".join(
        f"<tr><td>{c.protocol}</td><td>{', '.join(map(str, c.labels))}</td><td>{c.score:.3f}</td></tr>"
        for c in result.ranking
    )
    table = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(r[k]))}</td>" for k in STATS_COLUMNS) + "</tr>"
        for r in stats_rows[:2000]
    )
    from importlib import resources

    text = resources.files("pancakes_model.app").joinpath("templates/match.html").read_text(encoding="utf-8")
    page = Template(text).substitute(
        protocol=result.protocol,
        labels=html.escape(json.dumps(match["assignment"])),
        score=f"{result.score:.3f}",
        plural="s" if len(ex_items) > 1 else "",
        warning=html.escape(result.warning),
        overview=base64.b64encode(png).decode(),
        ranking=ranking,
        header="".join(f"<th>{c}</th>" for c in STATS_COLUMNS),
        table=table,
    )
    write_text(partial / "report.html", page)
    return {
        "format": "pancakes-match-run/1",
        "M": M,
        "K": K,
        "model_sha256": model_hash,
        "protocol": result.protocol,
        "inputs": [str(r) if isinstance(r, Path) else r.stem for r in refs],
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
