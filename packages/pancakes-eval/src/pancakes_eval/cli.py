"""``pancakes-eval``: score label maps on disk against reference masks.

Example::

    pancakes-eval score OUT/ GT/ --format csv --output scores.csv

``OUT`` is what ``pancakes segment`` wrote (``OUT/labels/<stem>_mNN.png|.nii.gz``); ``GT`` holds
one mask per input with the same stem. All inputs form one set unless ``--groups FILE`` (CSV with
columns ``stem,set``) assigns them to several sets.
"""

from __future__ import annotations

import argparse
import csv
import io as _io
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from pancakes_eval.io import MASK_SUFFIXES, find_predictions, read_label_image, remap
from pancakes_eval.set_metrics import compute_set_dice, compute_set_hd95, compute_set_iou

__all__ = ["main"]

_METRICS = ("dice", "iou", "hd95")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="pancakes-eval", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    sc = sub.add_parser(
        "score",
        help="Set Dice / IoU / HD95 of predicted protocols vs. masks",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sc.add_argument("pred", type=Path, help="prediction folder (pancakes segment's OUT)")
    sc.add_argument("gt", type=Path, help="folder of reference masks named <stem>.<ext>")
    sc.add_argument("--groups", type=Path, help="CSV with columns stem,set (default: one set)")
    sc.add_argument("--label", type=int, default=None, help="reference label to score (default: every non-zero voxel)")
    sc.add_argument("--num-labels", "-K", type=int, default=None, help="K of the predictions")
    sc.add_argument("--metrics", default="dice,iou,hd95", help="comma list of dice,iou,hd95")
    sc.add_argument("--spacing", default=None, help="voxel size 'x,y[,z]' for HD95 (default: NIfTI header, else 1)")
    sc.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output format")
    sc.add_argument("--output", "-o", type=Path, default=None, help="write here instead of stdout")
    return ap


def _read_groups(path: Path | None, stems: Sequence[str]) -> dict[str, list[str]]:
    if path is None:
        return {"all": list(stems)}
    if not path.is_file():
        raise FileNotFoundError(f"groups file not found: {path}")
    groups: dict[str, list[str]] = {}
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"stem", "set"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: needs a header with columns 'stem' and 'set'")
        for row in reader:
            if row["stem"] not in stems:
                raise ValueError(f"{path}: stem {row['stem']!r} has no prediction")
            groups.setdefault(row["set"], []).append(row["stem"])
    left_out = sorted(set(stems) - {s for g in groups.values() for s in g})
    if left_out:
        raise ValueError(f"{path}: assigns no set to {left_out[:5]}{' …' if len(left_out) > 5 else ''}")
    return groups


def _score(args: argparse.Namespace) -> list[dict]:
    import numpy as np

    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    unknown = sorted(set(metrics) - set(_METRICS))
    if unknown or not metrics:
        raise ValueError(f"unknown metric(s) {unknown or metrics}; choose from {list(_METRICS)}")
    if not args.gt.is_dir():
        raise FileNotFoundError(f"reference folder does not exist: {args.gt}")
    preds = find_predictions(args.pred)
    spacing_arg = None
    if args.spacing:
        try:
            spacing_arg = tuple(float(v) for v in args.spacing.split(","))
        except ValueError:
            raise ValueError(
                f"--spacing must be numbers separated by commas such as 0.5,0.5,2, got {args.spacing!r}"
            ) from None
        if not all(np.isfinite(v) and v > 0 for v in spacing_arg):
            raise ValueError(f"--spacing values must be positive numbers, got {args.spacing!r}")

    def gt_path(stem: str) -> Path:
        for suf in MASK_SUFFIXES:
            if (args.gt / f"{stem}{suf}").is_file():
                return args.gt / f"{stem}{suf}"
        raise FileNotFoundError(f"no reference mask for {stem!r} in {args.gt}")

    if args.output is not None and not args.output.parent.is_dir():
        raise FileNotFoundError(f"--output: folder {args.output.parent} does not exist")
    rows = []
    for name, stems in _read_groups(args.groups, sorted(preds)).items():
        if not stems:
            raise ValueError(f"set {name!r} is empty")
        pred_stack, ref_stack, spacings = [], [], []
        for stem in stems:
            ref, sp = read_label_image(gt_path(stem))
            maps = [read_label_image(p)[0] for p in preds[stem].paths]
            for p, mp in zip(preds[stem].paths, maps):
                if mp.shape != ref.shape:
                    raise ValueError(f"{p.name} has shape {mp.shape}, reference {ref.shape}")
            pred_stack.append(np.stack(maps))
            mask = ref != 0 if args.label is None else ref == args.label
            if not mask.any():
                what = "is empty" if args.label is None else f"has no label {args.label}"
                warnings.warn(f"the reference mask of {stem!r} {what}: its Dice is 0 for every candidate", stacklevel=1)
            ref_stack.append(mask)
            spacings.append(spacing_arg or sp or (1.0,) * ref.ndim)
        shapes = {r.shape for r in ref_stack}
        if len(shapes) != 1:
            raise ValueError(f"set {name!r} mixes image shapes {sorted(shapes)}; group them apart")
        # one remapping for the whole set: label values keep their meaning across its images, and a
        # stray huge value (2³¹ − 1) costs nothing; the values are reported as they are in the files
        values, pred_arr = remap(np.stack(pred_stack))
        ref_arr = np.stack(ref_stack)
        num_labels = len(values)
        if args.num_labels is not None and values.size and values[-1] >= args.num_labels:
            raise ValueError(f"set {name!r}: label value {int(values[-1])} is not below --num-labels {args.num_labels}")
        row: dict = {"set": name, "n_images": len(stems), "n_protocols": pred_arr.shape[1]}
        for metric in metrics:
            if metric == "dice":
                res = compute_set_dice(pred_arr, ref_arr, num_labels=num_labels)
            elif metric == "iou":
                res = compute_set_iou(pred_arr, ref_arr, num_labels=num_labels)
            else:
                res = compute_set_hd95(pred_arr, ref_arr, num_labels=num_labels, spacing=np.asarray(spacings))
            row[f"set_{metric}"] = res.score
            row[f"{metric}_protocol"] = preds[stems[0]].protocols[res.protocol]
            row[f"{metric}_label"] = int(values[res.label]) if res.label is not None and res.label >= 0 else res.label
        rows.append(row)
    return rows


def _render(rows: list[dict], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(rows, indent=2) + "\n"
    buf = _io.StringIO()
    if fmt == "csv":
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue()
    cols = list(rows[0])
    cells = [[f"{r[c]:.4f}" if isinstance(r[c], float) else str(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 bad input)."""
    args = _parser().parse_args(argv)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            rows = _score(args)
        for w in caught:
            print(f"pancakes-eval: warning: {w.message}", file=sys.stderr)
    except (FileNotFoundError, ValueError, ImportError) as exc:
        print(f"pancakes-eval: error: {exc}", file=sys.stderr)
        return 2
    text = _render(rows, args.format)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
