"""The ``pancakes train`` command and ``python -m pancakes_model.train`` (also torchrun's target)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from pancakes_model.training.config import load_config
from pancakes_model.training.trainer import Trainer

__all__ = ["build_parser", "main", "run_from_args"]


def build_parser(ap: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    ap = ap or argparse.ArgumentParser(prog="pancakes train", description="Train a Pancakes model.")
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
    ap.add_argument("--max-minutes", type=float, default=None, help="stop cleanly with a checkpoint after this")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    return ap


def run_from_args(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config, args.overrides)
        trainer = Trainer(cfg, resume=args.resume, progress=not args.quiet)
        result = trainer.run(max_minutes=args.max_minutes)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        print(f"pancakes train: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(result, indent=1, default=str))
    # stopped by a signal (checkpoint saved): the shell's convention, so schedulers see it
    return 128 + signal.Signals[result["signal"]].value if result.get("signal") else 0


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    from pancakes_model.app.runtime import keep_freed_memory

    keep_freed_memory()
    return run_from_args(build_parser().parse_args(argv))
