"""``pancakes train`` and ``python -m pancakes_model.train`` (also torchrun's target).

The arguments are :func:`pancakes_model.parser.train_arguments`; a configuration the trainer
refuses (:class:`~pancakes_model.training.config.ConfigError`) is one line and exit code 2.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import sys
from collections.abc import Sequence

import torch

from pancakes_data import UserError
from pancakes_model.parser import train_arguments
from pancakes_model.runtime import keep_freed_memory
from pancakes_model.training.config import load_config
from pancakes_model.training.trainer import Trainer

__all__ = ["main", "run_from_args"]


def run_from_args(args: argparse.Namespace) -> int:
    """Train as the parsed arguments say; 0 when done, 128 + N when stopped by signal N."""
    finished, trainer = False, None
    try:
        cfg = load_config(args.config, args.overrides)
        trainer = Trainer(cfg, resume=args.resume, progress=not args.quiet)
        result = trainer.run(max_minutes=args.max_minutes)
        finished = True
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            # Every rank leaves together: a rank that tears its gloo pairs down while rank 0 still
            # writes the last checkpoint can abort at exit ("terminate called without an active
            # exception"). After a failure there is no barrier: the other ranks may never reach it.
            if finished:
                torch.distributed.barrier()
            # DistributedDataParallel's reducer keeps the process group and its last gloo work
            # alive; freed only at interpreter shutdown, their C++ threads can abort the process
            # after training succeeded (seen once in CI). Free them while Python still runs.
            trainer = None
            gc.collect()
            torch.distributed.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(result, indent=1, default=str))
    # stopped by a signal (checkpoint saved): the shell's convention, so schedulers see it
    return 128 + signal.Signals[result["signal"]].value if result.get("signal") else 0


def main(argv: Sequence[str] | None = None) -> int:
    keep_freed_memory()
    args = train_arguments(argparse.ArgumentParser(prog="python -m pancakes_model.train")).parse_args(argv)
    try:
        return run_from_args(args)
    except UserError as exc:
        print(f"pancakes train: error: {exc}", file=sys.stderr)
        return 2
