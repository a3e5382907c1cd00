"""``pancakes``: the user command.

    pancakes segment INPUT... --out OUT [-M 8] [-K 20] [--model PATH] [--axis axial] [--device cpu]
                     [--protocol N ...] [--like EARLIER_OUT] [--force]
    pancakes demo [--out DIR]
    pancakes train --config FILE [--set section.key=value ...] [--resume] [--max-minutes N]
    pancakes evaluate [--model PATH] [--store DIR] [--write MODEL_CARD.md]

Bad input exits with code 2 and one clear message (no traceback); nothing already on disk is
overwritten without ``--force``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="pancakes", description="Consistent multi-protocol segmentation of image sets.")
    sub = ap.add_subparsers(dest="command", required=True)
    s = sub.add_parser("segment", help="segment files or folders (one set) into M protocols")
    s.add_argument("inputs", nargs="+", help="PNG/JPEG/TIFF/NIfTI files or folders; all together form the set")
    s.add_argument("--out", "-o", required=True, type=Path, help="output folder")
    s.add_argument("-M", type=int, default=8, help="number of protocols (default 8)")
    s.add_argument("-K", type=int, default=20, help="labels per protocol (default 20)")
    s.add_argument("--model", default="default", help="weights file (default: the shipped model)")
    s.add_argument(
        "--axis",
        default="axial",
        choices=("axial", "coronal", "sagittal"),
        help="slicing axis for 3D volumes (in RAS orientation)",
    )
    s.add_argument("--device", default="cpu", help="cpu or cuda")
    s.add_argument(
        "--protocol", type=int, action="append", default=None, metavar="N", help="keep only protocol N (repeatable)"
    )
    s.add_argument(
        "--like",
        type=Path,
        default=None,
        help="earlier output (or its run.json) whose M, K and model this run must match",
    )
    s.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    s.add_argument("--quiet", action="store_true")
    d = sub.add_parser("demo", help="segment the small sample set shipped with pancakes")
    d.add_argument("--out", type=Path, default=Path("pancakes-demo"))
    d.add_argument("--force", action="store_true")
    from pancakes_model.training import evaluate as _ev
    from pancakes_model.training import trainer as _tr

    _tr.build_parser(sub.add_parser("train", help="train a model (needs pancakes-model[train])"))
    _ev.build_parser(sub.add_parser("evaluate", help="evaluate a model on dev data with baselines"))
    return ap


def demo_inputs() -> list[Path]:
    """The shipped sample images (MNI152 2009c slices; see demo/NOTICE.txt)."""
    folder = Path(str(resources.files("pancakes_model") / "demo"))
    return sorted(folder.glob("*.png"))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 bad input)."""
    args = _parser().parse_args(argv)
    from pancakes_model.app.runtime import keep_freed_memory

    keep_freed_memory()
    if args.command == "train":
        from pancakes_model.training.trainer import run_from_args

        return run_from_args(args)
    if args.command == "evaluate":
        from pancakes_model.training.evaluate import run_from_args

        return run_from_args(args)
    from pancakes_model.app.segment import InputError, run_segment

    try:
        if args.command == "demo":
            inputs = demo_inputs()
            meta = run_segment(inputs, args.out, force=args.force, progress=False)
            print(f"demo: {len(inputs)} MNI152 slices → {len(meta['protocols'])} protocols")
        else:
            meta = run_segment(
                args.inputs,
                args.out,
                M=args.M,
                K=args.K,
                model_path=args.model,
                axis=args.axis,
                device=args.device,
                force=args.force,
                protocols=args.protocol,
                like=args.like,
                progress=not args.quiet,
            )
        out = args.out
        print(
            f"overview: {out / 'overview.png'}\nreport:   {out / 'report.html'}\n"
            f"labels:   {out / 'labels'}\nstats:    {out / 'stats.csv'}  "
            f"({meta['timings_s']['total']:.1f} s)"
        )
    except InputError as exc:
        print(f"pancakes: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
