"""``pancakes``: the user command.

    pancakes segment INPUT... --out OUT [-M 8] [-K 20] [--model PATH] [--axis axial] [--device cpu]
                     [--protocol N ...] [--like EARLIER_OUT] [--force | --resume]
                     [--channel N|NAME] [--series UID ...] [--max-pixels N] [--quiet]
    pancakes demo [--out DIR] [--force]
    pancakes train --config FILE [--set section.key=value ...] [--resume] [--max-minutes N]
    pancakes evaluate [--model PATH] [--dev configs/dev.toml] [--write MODEL_CARD.md]
    pancakes match INPUT... --example IMAGE --mask MASK --out OUT [-M 8] [-K 20] [--multi-label]
    pancakes finetune --images DIR --labels DIR --out WEIGHTS.safetensors [--minutes 5]

Bad input exits with code 2 and one clear message (no traceback); nothing already on disk is
overwritten without ``--force``, and ``--force`` only replaces an earlier Pancakes output.
SIGTERM is handled like Ctrl-C: the run stops cleanly, its partial results stay for ``--resume``.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

__all__ = ["main"]

TRAIN_EXTRA = "pip install 'pancakes-model[train]'"


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    return value


def _parser() -> argparse.ArgumentParser:
    from pancakes_model.__about__ import __version__

    ap = argparse.ArgumentParser(prog="pancakes", description="Consistent multi-protocol segmentation of image sets.")
    ap.add_argument("--version", action="version", version=f"pancakes-model {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)
    dflt = argparse.ArgumentDefaultsHelpFormatter
    s = sub.add_parser("segment", help="segment files or folders (one set) into M protocols", formatter_class=dflt)
    s.add_argument(
        "inputs", nargs="+", help="PNG/JPEG/TIFF/NIfTI/NRRD/MHA files, folders, DICOM folders; all form one set"
    )
    s.add_argument("--out", "-o", required=True, type=Path, help="output folder")
    s.add_argument("-M", type=_positive, default=8, help="number of protocols")
    s.add_argument("-K", type=_positive, default=20, help="labels per protocol")
    s.add_argument("--model", default="default", help="weights file ('default': the shipped model)")
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
    s.add_argument("--force", action="store_true", help="replace an earlier pancakes output in OUT")
    s.add_argument("--resume", action="store_true", help="continue an interrupted run in OUT (same inputs and flags)")
    s.add_argument("--channel", default=None, help="channel (index or name) of multichannel OME/ImageJ TIFFs")
    s.add_argument("--series", action="append", default=None, metavar="UID", help="DICOM SeriesInstanceUID to segment")
    s.add_argument(
        "--max-pixels",
        type=_positive,
        default=None,
        help="largest 2D image accepted, in pixels (default: Pillow's decompression-bomb limit, 89,478,485)",
    )
    s.add_argument(
        "--dask",
        default=None,
        metavar="ADDRESS",
        help="segment on a Dask cluster: a scheduler address, or local:N for N local workers "
        "(inputs, model and OUT on a shared file system; trusted schedulers only)",
    )
    s.add_argument(
        "--match", type=Path, default=None, help="an earlier match.json: also write its chosen structure (OUT/masks)"
    )
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    mt = sub.add_parser(
        "match", help="pick the structure drawn on an example and find it in every input", formatter_class=dflt
    )
    mt.add_argument("inputs", nargs="+", help="the collection: files or folders (any format segment reads)")
    mt.add_argument("--example", action="append", required=True, help="an annotated image (repeatable)")
    mt.add_argument("--mask", action="append", required=True, help="its mask, same size (repeatable, in order)")
    mt.add_argument("--out", "-o", required=True, type=Path, help="output folder")
    mt.add_argument("-M", type=_positive, default=8, help="number of protocols")
    mt.add_argument("-K", type=_positive, default=20, help="labels per protocol")
    mt.add_argument("--model", default="default", help="weights file ('default': the shipped model)")
    mt.add_argument("--multi-label", action="store_true", help="the masks hold several structures (one value each)")
    mt.add_argument("--axis", default="axial", choices=("axial", "coronal", "sagittal"), help="slicing axis of volumes")
    mt.add_argument("--device", default="cpu", help="cpu or cuda")
    mt.add_argument("--force", action="store_true", help="replace an earlier pancakes output in OUT")
    mt.add_argument("--channel", default=None, help="channel (index or name) of multichannel OME/ImageJ TIFFs")
    mt.add_argument("--quiet", action="store_true", help="no progress bar")
    d = sub.add_parser("demo", help="segment the small sample set shipped with pancakes", formatter_class=dflt)
    d.add_argument("--out", type=Path, default=Path("pancakes-demo"), help="output folder")
    d.add_argument("--force", action="store_true", help="replace an earlier demo output")
    # listed for --help; their own options are parsed by the training room (see main)
    sub.add_parser("train", help=f"train a model (needs {TRAIN_EXTRA})", add_help=False)
    sub.add_parser(
        "evaluate", help=f"evaluate a model on dev data with baselines (needs {TRAIN_EXTRA})", add_help=False
    )
    return ap


def demo_inputs() -> list[Path]:
    """The shipped sample images (MNI152 2009c slices; see demo/NOTICE.txt)."""
    folder = Path(str(resources.files("pancakes_model") / "demo"))
    return sorted(folder.glob("*.png"))


def _training_command(name: str, rest: list[str]) -> int:
    """``pancakes train`` / ``evaluate``: the training room is imported only with the extra."""
    try:
        import matplotlib  # noqa: F401  (the [train] extra's dependencies)

        import pancakes_eval  # noqa: F401
        import pancakes_synth  # noqa: F401
    except ImportError as exc:
        print(
            f"pancakes {name}: error: needs the [train] extra ({exc.name} is missing): {TRAIN_EXTRA}", file=sys.stderr
        )
        return 2
    if name == "train":
        from pancakes_model.training.cli import build_parser, run_from_args
    elif name == "finetune":
        from pancakes_model.training.finetune import build_parser, run_from_args
    else:
        from pancakes_model.training.evaluate import build_parser, run_from_args
    return run_from_args(build_parser(argparse.ArgumentParser(prog=f"pancakes {name}")).parse_args(rest))


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 bad input, 130 interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("train", "evaluate", "finetune"):
        return _training_command(argv[0], argv[1:])
    args = _parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _terminate)  # SIGTERM as Ctrl-C: clean exit, no traceback
    try:
        return _run(args)
    except KeyboardInterrupt:
        out = getattr(args, "out", None)
        hint = f"; partial results stay in {out}/.partial (continue with --resume)" if args.command == "segment" else ""
        print(f"pancakes: interrupted{hint}", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace) -> int:
    from pancakes_model.app.runtime import keep_freed_memory
    from pancakes_model.app.segment import InputError, run_segment

    keep_freed_memory()
    try:
        if args.command == "match":
            from pancakes_model.app.match import run_match

            meta = run_match(
                args.inputs,
                args.out,
                examples=args.example,
                masks=args.mask,
                M=args.M,
                K=args.K,
                model_path=args.model,
                multi_label=args.multi_label,
                axis=args.axis,
                device=args.device,
                force=args.force,
                channel=args.channel,
                progress=not args.quiet,
            )
            print(f"protocol {meta['protocol']}: masks in {args.out / 'masks'}, ranking in {args.out / 'match.json'}")
            return 0
        if args.command == "demo":
            inputs = demo_inputs()
            meta = run_segment(inputs, args.out, force=args.force, progress=False)
            print(f"demo: {len(inputs)} MNI152 slices → {len(meta['protocols'])} protocols")
        else:
            channel = args.channel
            if channel is not None and channel.lstrip("-").isdigit():
                channel = int(channel)
            client = None
            if args.dask:
                from pancakes_model.app.execution import dask_client

                try:
                    client = dask_client(args.dask)
                except (ImportError, OSError, ValueError) as exc:
                    raise InputError(f"--dask {args.dask}: {exc}") from exc
            try:
                meta = _segment(args, channel, client)
            finally:
                if client is not None:
                    from pancakes_model.app.execution import close_client

                    close_client(client)
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


def _segment(args: argparse.Namespace, channel, client) -> dict:
    from pancakes_data.io import MAX_PIXELS
    from pancakes_model.app.segment import run_segment

    return run_segment(
        args.inputs,
        args.out,
        M=args.M,
        K=args.K,
        model_path=args.model,
        axis=args.axis,
        device=args.device,
        force=args.force,
        resume=args.resume,
        protocols=args.protocol,
        like=args.like,
        max_pixels=args.max_pixels or MAX_PIXELS,
        channel=channel,
        series=args.series,
        client=client,
        match=args.match,
        progress=not args.quiet,
    )


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
