"""Every ``pancakes`` command's arguments, in a module that imports neither torch nor the model.

``pancakes --version`` and every ``--help`` (segment, match, demo, finetune, train, evaluate,
export) are answered from here alone; the command runs only after its arguments parsed. The same
definitions serve ``python -m pancakes_model.train`` (:func:`train_arguments`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pancakes_model.__about__ import __version__

__all__ = [
    "TRAIN_EXTRA",
    "build_parser",
    "evaluate_arguments",
    "export_arguments",
    "finetune_arguments",
    "positive_int",
    "train_arguments",
]

TRAIN_EXTRA = "pip install 'pancakes-model[train]'"
TRAINING_COMMANDS = ("train", "evaluate", "finetune")
DESCRIPTION = "Consistent multi-protocol segmentation of image sets."
EPILOG = (
    "Also runnable as `python -m pancakes_model` (the PyPI name `pancakes` belongs to another package "
    "whose command has the same name). Bad input: one line and exit code 2."
)


def positive_int(text: str) -> int:
    """A whole number ≥ 1 (argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """A number > 0 (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {text}")
    return value


def _segment_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument(
        "inputs", nargs="+", help="PNG/JPEG/TIFF/NIfTI/NRRD/MHA files, folders, DICOM folders; all form one set"
    )
    s.add_argument("--out", "-o", required=True, type=Path, help="output folder")
    # M and K are range-checked with the command's other limits (M ≤ 256, K ≤ 65,536)
    s.add_argument("-M", type=int, default=8, help="number of protocols")
    s.add_argument("-K", type=int, default=20, help="labels per protocol (at most: a model may offer fewer in some)")
    s.add_argument("--model", default="default", help="weights file ('default': the shipped model)")
    s.add_argument(
        "--axis",
        default="axial",
        choices=("axial", "coronal", "sagittal"),
        help="slicing axis for 3D volumes (in RAS orientation)",
    )
    s.add_argument("--device", default="cpu", help="cpu or cuda")
    s.add_argument("--force", action="store_true", help="replace an earlier pancakes output in OUT (its files only)")
    s.add_argument("--resume", action="store_true", help="continue an interrupted run in OUT (same inputs and flags)")
    s.add_argument("--channel", default=None, help="channel (index or name) of multichannel OME/ImageJ TIFFs")
    s.add_argument(
        "--max-pixels",
        type=positive_int,
        default=None,
        help="largest 2D image accepted, in pixels (default: Pillow's decompression-bomb limit, 89,478,485)",
    )
    s.add_argument(
        "--dask",
        default=None,
        metavar="ADDRESS",
        help="run on a Dask cluster: a scheduler address, or local:N for N local workers "
        "(inputs, model and OUT on a shared file system; trusted schedulers only)",
    )
    s.add_argument("--quiet", action="store_true", help="no progress bar")


def train_arguments(ap: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``pancakes train`` / ``python -m pancakes_model.train``."""
    ap.add_argument("--config", type=Path, default=None, help="TOML config (default: the defaults of training.config)")
    ap.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a config key (repeatable), e.g. --set train.lr=1e-3",
    )
    ap.add_argument("--resume", action="store_true", help="continue the run in out.dir from its newest checkpoint")
    ap.add_argument(
        "--max-minutes", type=positive_float, default=None, help="stop cleanly with a checkpoint after this"
    )
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    return ap


def evaluate_arguments(ap: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``pancakes evaluate``."""
    ap.add_argument("--model", default="default", help="weights file (default: the shipped model)")
    ap.add_argument("--dev", type=Path, default=Path("configs/dev.toml"), help="dev config (default configs/dev.toml)")
    ap.add_argument("--store", type=Path, default=None, help="dataset store (default: the dev config's)")
    ap.add_argument("--families", default="", help="comma list of dev families (default: all)")
    ap.add_argument("--sets", type=positive_int, default=None, help="sets per (family, S) (default: the dev config's)")
    ap.add_argument("--sizes", default="", help="comma list of S (default: the dev config's)")
    ap.add_argument("--no-grid", action="store_true", help="skip the M × K grid")
    ap.add_argument("--compare", default=None, help="weights of the current model: apply the stage rule")
    ap.add_argument(
        "--annotations",
        action="store_true",
        help="also measure choosing from one annotated example and fine-tuning on 5 / 20 (minutes)",
    )
    ap.add_argument("--out", type=Path, default=Path("runs/evaluate"), help="folder for results.json + figure")
    ap.add_argument(
        "--cache",
        type=Path,
        default=Path("runs/evaluate-cache"),
        help="where baseline scores are cached (keyed by the dev config and the baseline code)",
    )
    ap.add_argument(
        "--write", action="append", default=[], type=Path, help="Markdown file whose eval block gets the table"
    )
    return ap


def finetune_arguments(ap: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``pancakes finetune``."""
    ap.add_argument("--images", type=Path, required=True, help="folder of images")
    ap.add_argument("--labels", type=Path, required=True, help="folder of label maps, named like the images")
    ap.add_argument("--out", type=Path, required=True, help="the fine-tuned weights (.safetensors)")
    ap.add_argument("--minutes", type=positive_float, default=5.0, help="training time")
    ap.add_argument("--steps", type=positive_int, default=100_000, help="at most this many steps")
    ap.add_argument("--model", default="default", help="the base weights ('default': the shipped model)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the split and the training draws")
    ap.add_argument("--dev", type=Path, default=Path("configs/dev.toml"), help="dev config for the forgetting check")
    score_help = "sets per family for the before/after scores (and, at most 8, the validation)"
    ap.add_argument("--score-sets", type=positive_int, default=20, help=score_help)
    ap.add_argument("--force", action="store_true", help="replace an existing --out file")
    return ap


def export_arguments(ap: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``pancakes export``."""
    ap.add_argument("--bioimageio", type=Path, required=True, metavar="OUT.zip", help="write a bioimage.io package")
    ap.add_argument("--model", default="default", help="weights file ('default': the shipped model)")
    ap.add_argument("-M", type=positive_int, default=8, help="protocols of the packaged test output")
    ap.add_argument("-K", type=positive_int, default=20, help="labels per protocol of the packaged test output")
    ap.add_argument("--force", action="store_true", help="replace an existing OUT.zip")
    return ap


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Adds "(default: X)" where the help does not say it already and X says something (not None,
    False or empty): no "(default: default)" or "(default: None)" beside a sentence that explains it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "(default" in text or action.default is None or action.default is False or action.default in ("", []):
            return text
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    """The ``pancakes`` command line (see the module docstring)."""
    ap = argparse.ArgumentParser(prog="pancakes", description=DESCRIPTION, epilog=EPILOG)
    ap.add_argument("--version", action="version", version=f"pancakes-model {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    dflt = _Help
    s = sub.add_parser("segment", help="segment files or folders (one set) into M protocols", formatter_class=dflt)
    _segment_arguments(s)
    s.add_argument(
        "--protocol", type=int, action="append", default=None, metavar="N", help="keep only protocol N (repeatable)"
    )
    s.add_argument(
        "--like",
        type=Path,
        default=None,
        help="earlier output (or its run.json) whose M, K and model this run must match (a model with a "
        "set-context branch also reuses its set's summary: the new inputs join that set)",
    )
    s.add_argument("--series", action="append", default=None, metavar="UID", help="DICOM SeriesInstanceUID to segment")
    s.add_argument(
        "--match", type=Path, default=None, help="an earlier match.json: also write its chosen structure (OUT/masks)"
    )
    mt = sub.add_parser(
        "match", help="pick the structure drawn on an example and find it in every input", formatter_class=dflt
    )
    _segment_arguments(mt)
    mt.add_argument("--example", action="append", required=True, help="an annotated image (repeatable)")
    mt.add_argument("--mask", action="append", required=True, help="its mask, same size (repeatable, in order)")
    mt.add_argument("--multi-label", action="store_true", help="the masks hold several structures (one value each)")
    d = sub.add_parser("demo", help="segment the small sample set shipped with pancakes", formatter_class=dflt)
    d.add_argument("--out", type=Path, default=Path("pancakes-demo"), help="output folder")
    d.add_argument("--force", action="store_true", help="replace an earlier demo output")
    finetune_arguments(
        sub.add_parser(
            "finetune",
            help=f"adapt the model to a few annotated images in minutes (needs {TRAIN_EXTRA})",
            formatter_class=dflt,
        )
    )
    train_arguments(sub.add_parser("train", help=f"train a model (needs {TRAIN_EXTRA})", formatter_class=dflt))
    evaluate_arguments(
        sub.add_parser(
            "evaluate", help=f"evaluate a model on dev data with baselines (needs {TRAIN_EXTRA})", formatter_class=dflt
        )
    )
    export_arguments(
        sub.add_parser("export", help="write the model as a bioimage.io model package", formatter_class=dflt)
    )
    return ap
