"""Each ``pancakes`` command as a function of its parsed arguments (:mod:`pancakes_model.parser`).

Commands raise :class:`pancakes_data.UserError` for anything the user can fix; :mod:`.cli` turns
it into one line and exit code 2. The training commands need the ``[train]`` extra, so their room
is imported when they run (an optional dependency, not a circle).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from pancakes_data.io import MAX_PIXELS
from pancakes_model.app.bioimageio import export_bioimageio
from pancakes_model.app.common import InputError
from pancakes_model.app.execution import close_client, dask_client
from pancakes_model.app.match import run_match
from pancakes_model.app.segment import run_segment
from pancakes_model.samples import demo_inputs

__all__ = ["COMMANDS", "demo_inputs"]


def _channel(text: str | None) -> int | str | None:
    return int(text) if text is not None and text.lstrip("-").isdigit() else text


def _client(args: argparse.Namespace):
    if not args.dask:
        return None
    try:
        return dask_client(args.dask)
    except (ImportError, OSError, ValueError) as exc:
        raise InputError(f"--dask {args.dask}: {exc}") from exc


def _common(args: argparse.Namespace) -> dict:
    return {
        "M": args.M,
        "K": args.K,
        "model_path": args.model,
        "axis": args.axis,
        "device": args.device,
        "force": args.force,
        "resume": args.resume,
        "max_pixels": args.max_pixels or MAX_PIXELS,
        "channel": _channel(args.channel),
        "progress": not args.quiet,
    }


def _report(out: Path, meta: dict) -> None:
    print(
        f"overview: {out / 'overview.png'}\nreport:   {out / 'report.html'}\n"
        f"labels:   {out / 'labels'}\nstats:    {out / 'stats.csv'}  ({meta['timings_s']['total']:.1f} s)"
    )


def segment(args: argparse.Namespace) -> int:
    client = _client(args)
    try:
        meta = run_segment(
            args.inputs, args.out, **_common(args), protocols=args.protocol, like=args.like, series=args.series,
            client=client, match=args.match,
        )  # fmt: skip
    finally:
        if client is not None:
            close_client(client)
    _report(args.out, meta)
    return 0


def match(args: argparse.Namespace) -> int:
    client = _client(args)
    try:
        meta = run_match(
            args.inputs, args.out, examples=args.example, masks=args.mask, multi_label=args.multi_label,
            client=client, **_common(args),
        )  # fmt: skip
    finally:
        if client is not None:
            close_client(client)
    print(f"protocol {meta['match']['protocol']}: masks in {args.out / 'masks'}, ranking in {args.out / 'match.json'}")
    _report(args.out, meta)
    return 0


def demo(args: argparse.Namespace) -> int:
    inputs = demo_inputs()
    meta = run_segment(inputs, args.out, force=args.force, progress=False)
    print(f"demo: {len(inputs)} MNI152 slices → {len(meta['protocols'])} protocols")
    _report(args.out, meta)
    return 0


def train(args: argparse.Namespace) -> int:
    from pancakes_model.training.cli import run_from_args

    return run_from_args(args)


def evaluate(args: argparse.Namespace) -> int:
    from pancakes_model.training.evaluate import run_from_args

    return run_from_args(args)


def finetune(args: argparse.Namespace) -> int:
    from pancakes_model.training.finetune import run_finetune

    summary = run_finetune(
        args.images, args.labels, args.out, minutes=args.minutes, steps=args.steps, base=args.model, seed=args.seed,
        dev=args.dev, force=args.force, score_sets=args.score_sets,
    )  # fmt: skip
    print(json.dumps(summary, indent=1))
    return 0


def export(args: argparse.Namespace) -> int:
    path = export_bioimageio(args.bioimageio, model=args.model, M=args.M, K=args.K, force=args.force)
    print(f"bioimage.io package: {path}", file=sys.stderr)
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "segment": segment,
    "match": match,
    "demo": demo,
    "train": train,
    "evaluate": evaluate,
    "finetune": finetune,
    "export": export,
}
