"""``pancakes`` (also ``python -m pancakes_model``): the user command.

    pancakes segment INPUT... --out OUT [-M 8] [-K 20] [--model PATH] [--axis axial] [--device cpu]
                     [--protocol N ...] [--like EARLIER_OUT] [--match MATCH_JSON] [--force | --resume]
                     [--channel N|NAME] [--series UID ...] [--max-pixels N] [--dask ADDRESS] [--quiet]
    pancakes match INPUT... --example IMAGE --mask MASK --out OUT [-M 8] [-K 20] [--multi-label]
                   [--force | --resume] [--dask ADDRESS]
    pancakes demo [--out DIR] [--force]
    pancakes finetune --images DIR --labels DIR --out WEIGHTS.safetensors [--minutes 5]
    pancakes train --config FILE [--set section.key=value ...] [--resume] [--max-minutes N]
    pancakes evaluate [--model PATH] [--dev configs/dev.toml] [--write MODEL_CARD.md]
    pancakes export --bioimageio OUT.zip [--model PATH]

The arguments live in the torch-free :mod:`pancakes_model.parser`: ``--version`` and every
``--help`` are answered before anything heavy is imported, which is why this module imports the
commands after parsing. A :class:`pancakes_data.UserError` from any command becomes one line and exit
code 2 here, in one place; nothing already on disk is overwritten without ``--force``, and
``--force`` only removes files an earlier Pancakes run wrote. SIGTERM is handled like Ctrl-C: the
run stops cleanly and its partial results stay for ``--resume``.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence

from pancakes_model.parser import TRAIN_EXTRA, TRAINING_COMMANDS, build_parser

__all__ = ["main"]


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt


def _missing_train_extra() -> str | None:
    """The name of the first missing [train] dependency, or None (they are imported by the
    training commands anyway; importing them here turns a missing one into one clear line)."""
    for name in ("matplotlib", "pancakes_synth", "skimage"):
        try:
            __import__(name)
        except ImportError:
            return name
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 bad input, 130 interrupted, 141 output pipe closed)."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.command in TRAINING_COMMANDS and (missing := _missing_train_extra()):
        print(f"pancakes {args.command}: error: needs the [train] extra ({missing} is missing): {TRAIN_EXTRA}",
              file=sys.stderr)  # fmt: skip
        return 2
    from pancakes_data import UserError, stdout_closed, write_failure
    from pancakes_model.app.commands import COMMANDS
    from pancakes_model.runtime import keep_freed_memory

    keep_freed_memory()
    previous = signal.signal(signal.SIGTERM, _terminate)  # SIGTERM as Ctrl-C: clean exit, no traceback
    try:
        return COMMANDS[args.command](args)
    except UserError as exc:
        print(f"pancakes: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `pancakes ... | head`: the reader has gone; stop quietly
        return stdout_closed()
    except OSError as exc:  # the machine refused a write: a full disk, a read-only or forbidden folder
        line = write_failure(exc)
        if line is None:
            raise
        resumable = args.command in ("segment", "match")
        hint = "; free space or fix the folder, then continue with --resume" if resumable else ""
        print(f"pancakes: error: {line}{hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        out = getattr(args, "out", None)
        resumable = args.command in ("segment", "match")
        hint = f"; partial results stay in {out}/.partial (continue with --resume)" if resumable else ""
        print(f"pancakes: interrupted{hint}", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
