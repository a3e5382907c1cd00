"""The evaluation as Markdown (the model card's and README's table, never typed by hand).

Only formatting: the rules and thresholds behind the verdicts are :mod:`.stagerule`'s."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path

from pancakes_model.training.stagerule import (
    GAP,
    MARGIN,
    SIZE_DRIFT,
    compare_models,
    meets_gap,
    meets_margin,
    meets_size_drift,
)

__all__ = ["candidates_markdown", "render_markdown", "set_counts_note", "stages_markdown", "write_block"]


def _cell(v: dict, n_sets: int, hd: bool = False) -> str:
    txt = f"{v['mean']:.3f} [{v['low']:.3f}, {v['high']:.3f}]"
    if hd and v["n_finite"] < n_sets:
        txt += f" ({v['n_finite']})"
    return txt


def stages_markdown(provenance: dict) -> list[str]:
    """The training stages of a model (each continued run adds one) and their totals."""
    stages = provenance.get("stages") or []
    if not stages:
        return []
    lines = [
        "| stage | steps | sets seen | resolution | hardware | wall time | commit |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, st in enumerate(stages, start=1):
        res = ", ".join(f"{size}² to {frac:.0%}" for frac, size in st.get("resolution", []))
        lines.append(
            f"| {i} | {st['steps']} | {st['sets_seen']} | {res} | {st['hardware']} | "
            f"{st['wall_time_s'] / 60:.1f} min | {st.get('commit', '?')} |"
        )
    tot = provenance.get("totals", {})
    if tot:
        lines.append(f"| total | {tot['steps']} | {tot['sets_seen']} | | | {tot['wall_time_s'] / 60:.1f} min | |")
    return ["Training stages (cumulative):", "", *lines, ""]


def set_counts_note(default: int, per_family: Mapping[str, int]) -> str:
    """ " (fine-parcels: 400; a, b: 50)" for the families whose number of sets is not ``default``."""
    more: dict[int, list[str]] = {}
    for fam, n in per_family.items():
        if n != default:
            more.setdefault(n, []).append(fam)
    note = "; ".join(f"{', '.join(fams)}: {n}" for n, fams in sorted(more.items(), reverse=True))
    return f" ({note})" if note else ""


def render_markdown(results: dict, *, provenance: dict | None = None) -> str:
    """The evaluation table with the quality-bar verdicts (and the stage rule when compared)."""
    n_sets = results["n_sets"]
    per_family = results.get("family_sets", {})
    lines = [
        f"Set metrics at M = {results['M']}, K = {results['K']}; mean over {n_sets} sets per cell"
        f"{set_counts_note(n_sets, per_family)} "
        "with 95% bootstrap CI. HD95 in pixels (lower is better; sets where no candidate is present in "
        "every image are left out of the HD95 mean, count in brackets). Dev families: `configs/dev.toml`.",
        "",
        "| dev family | S | method | Set Dice | Set IoU | Set HD95 |",
        "|---|---|---|---|---|---|",
    ]
    verdicts = []
    for fam, by_s in results["sources"].items():
        n = per_family.get(fam, n_sets)
        for s, by_m in by_s.items():
            for method, e in by_m.items():
                name = f"**{method}**" if method == "pancakes" else method
                cells = [_cell(e["set_dice"], n), _cell(e["set_iou"], n), _cell(e["set_hd95"], n, True)]
                lines.append(f"| {fam} | {s} | {name} | " + " | ".join(cells) + " |")
        margin = results.get("margin", {}).get(fam)
        if margin:
            ok = meets_margin(margin)
            verdicts.append(
                f"- {fam}: S=3 Pancakes − {margin['baseline']} (the better baseline) = {margin['mean']:+.3f} "
                f"[{margin['low']:+.3f}, {margin['high']:+.3f}] → "
                f"{'meets' if ok else 'does NOT meet'} the bar (≥ {MARGIN}, CI above 0)."
            )
        by_s = results["sources"].get(fam, {})
        if "1" in by_s and "5" in by_s and "pancakes" in by_s["1"] and "pancakes" in by_s["5"]:
            s1, s5 = by_s["1"]["pancakes"]["set_dice"]["mean"], by_s["5"]["pancakes"]["set_dice"]["mean"]
            verdicts.append(
                # Four decimals: at three, a drift of -0.0305 printed as "-0.030 (NOT within 0.03)".
                f"  S=5 − S=1 (Pancakes Set Dice): {s5 - s1:+.4f} "
                f"({'within' if meets_size_drift(s1, s5) else 'NOT within'} {SIZE_DRIFT})."
            )
        paired = results.get("consistency", {}).get(fam)
        if paired:
            g = paired["gap"]
            verdicts.append(
                f"  Paired on the same S={paired['S']} sets (each image scored alone, "
                f"{paired['each_image_alone']:.3f}, vs the whole set, {paired['whole_set']:.3f}): "
                f"gap {g['mean']:+.4f} [{g['low']:+.4f}, {g['high']:+.4f}] "
                f"({'within' if meets_gap(g) else 'NOT within'} {GAP})."
            )
    lines += ["", "Quality bars:", *verdicts, ""]
    diagnosis = results.get("diagnosis")
    if diagnosis:
        lines += [
            "Diagnosis at S = 3 (Pancakes, means over the sets): best single label vs the best union of labels of "
            "one protocol (the gap is over-splitting), and the winning label's precision and recall (low precision: "
            "too coarse; low recall: too fine); and the labels one image shows in the finest and the coarsest "
            "protocol.",
            "",
            "| dev family | best single | best union | union − single | labels in union | precision | recall "
            "| labels: finest / coarsest protocol |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for fam, d in diagnosis.items():
            spread = (  # absent from results written before the column existed
                f"{d['finest_labels']:.1f} / {d['coarsest_labels']:.1f}" if "finest_labels" in d else "–"
            )
            lines.append(
                f"| {fam} | {d['best_single']:.3f} | {d['best_union']:.3f} | {d['best_union'] - d['best_single']:+.3f} "
                f"| {d['union_labels']:.1f} | {d['precision']:.3f} | {d['recall']:.3f} | {spread} |"
            )
        lines.append("")
    stage = results.get("stage")
    if stage:
        lines += [f"Stage rule against the current model (paired, S = {stage['S']}, new − current):", ""]
        for fam, v in stage["families"].items():
            lines.append(f"- {fam}: {v['mean']:+.3f} [{v['low']:+.3f}, {v['high']:+.3f}]")
        p = stage["pooled"]
        verdict = "ship" if stage["accept"] else "discard"
        lines += [f"- pooled: {p['mean']:+.3f} [{p['low']:+.3f}, {p['high']:+.3f}] → **{verdict}**", ""]
    if results.get("grid"):
        ms = sorted({int(k.split(",")[0]) for k in results["grid"]})
        ks = sorted({int(k.split(",")[1]) for k in results["grid"]})
        lines += ["Effect of M (rows) and K (columns), Pancakes Set Dice at S = 3, all dev families:", ""]
        lines += ["| M \\ K | " + " | ".join(str(k) for k in ks) + " |", "|---" * (len(ks) + 1) + "|"]
        for m in ms:
            lines.append(f"| {m} | " + " | ".join(f"{results['grid'][f'{m},{k}']:.3f}" for k in ks) + " |")
        lines.append("")
    if provenance:
        lines += stages_markdown(provenance)
        lines.append(
            f"Model: {provenance.get('steps', '?')} steps (last stage), {provenance.get('hardware', '?')}, "
            f"commit {provenance.get('commit', '?')}, {provenance.get('wall_time_s', '?')} s of training."
        )
    return "\n".join(lines).rstrip() + "\n"


def write_block(path: str | Path, body: str, *, marker: str = "eval") -> None:
    """Replace the text between ``<!-- {marker}:start -->`` and ``<!-- {marker}:end -->``."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    if start not in text or end not in text:
        raise ValueError(f"{path} has no {start} … {end} block")
    a, b = text.index(start) + len(start), text.index(end)
    path.write_text(text[:a] + "\n" + body + text[b:], encoding="utf-8")


def candidates_markdown(runs: dict[str, dict], reference: dict, *, s: str = "3") -> str:
    """The candidate runs against the shipped model on the same dev sets (the stage rule).

    Args:
        runs: run name → its evaluation (``results.json``; pancakes values per set at S = ``s``).
        reference: the shipped model's evaluation on the same dev config.
    """
    fams = list(reference["sources"])
    head = "| run | " + " | ".join(f"{f} (Δ vs shipped)" for f in fams) + " | pooled Δ | rule |"
    lines = [head, "|---" * (len(fams) + 3) + "|"]
    ref_cells = [f"{reference['sources'][f][s]['pancakes']['set_dice']['mean']:.3f}" for f in fams]
    lines.append("| shipped | " + " | ".join(ref_cells) + " | | |")
    for name, res in runs.items():
        stage = compare_models(res, reference, s=s, seed=res.get("seed", 0))  # evaluate's bootstrap
        cells = []
        for f in fams:
            mean = res["sources"][f][s]["pancakes"]["set_dice"]["mean"]
            d = stage["families"][f]
            cells.append(f"{mean:.3f} ({d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}])")
        p = stage["pooled"]
        verdict = "ship" if stage["accept"] else "discard"
        lines.append(
            f"| {name} | "
            + " | ".join(cells)
            + f" | {p['mean']:+.3f} [{p['low']:+.3f}, {p['high']:+.3f}] | {verdict} |"
        )
    return "\n".join(lines) + "\n"


def _read_results(path: Path) -> dict:
    """A ``results.json`` of ``pancakes evaluate``; ValueError naming the file if it cannot be one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read results {str(path)!r}: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{str(path)!r} is not a results.json of `pancakes evaluate` (a {type(data).__name__})")
    return data


def main(argv=None) -> int:
    """``python -m pancakes_model.training.report --reference R.json NAME=RESULTS.json ...``"""
    ap = argparse.ArgumentParser(prog="python -m pancakes_model.training.report")
    ap.add_argument("--reference", type=Path, required=True, help="results.json of the shipped model")
    ap.add_argument("runs", nargs="+", help="NAME=results.json of a candidate (repeatable)")
    ap.add_argument("--write", type=Path, default=None, help="Markdown file with a <!-- MARKER:start/end --> block")
    ap.add_argument("--marker", default="candidates", help="the block's name (one block per round of candidates)")
    args = ap.parse_args(argv)
    try:
        runs = {}
        for item in args.runs:
            name, sep, path = item.partition("=")
            if not sep or not name:
                raise ValueError(f"a run must be NAME=results.json, got {item!r}")
            runs[name] = _read_results(Path(path))
        text = candidates_markdown(runs, _read_results(args.reference))
        if args.write:
            write_block(args.write, text, marker=args.marker)  # ValueError: the file lacks the block
        else:
            print(text)
    except (ValueError, OSError) as exc:
        print(f"report: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
