"""``pancakes-synth``: generate synthetic training sets, or preview them.

pancakes-synth generate --n 120000 --out DIR [--set-size 5] [--source procedural]
                        [--seed 0] [--workers N] [--resume] [--force]
pancakes-synth preview --out sets.png [--sets 4] [--source procedural] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pancakes_data.cluster import close_client, dask_client
from pancakes_data.errors import stdout_closed, write_failure
from pancakes_synth.preview import save_preview
from pancakes_synth.shards import generate_dataset
from pancakes_synth.sources import DEFAULT_BANK
from pancakes_synth.specs import open_source

__all__ = ["main"]

SOURCE_HELP = (
    "procedural (default), procedural:FAM1,FAM2, totalseg:DIR, labels:DIR, scenes[:FAMILIES] "
    "with options such as ';textures=skimage' (see pancakes_synth.specs)"
)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="pancakes-synth", description="Anatomix-style synthetic image sets.")
    sub = ap.add_subparsers(dest="command", required=True)
    g = sub.add_parser(
        "generate",
        help="write sharded synthetic sets to a directory",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    g.add_argument("--n", type=int, required=True, help="number of image/label pairs (e.g. 120000)")
    g.add_argument("--out", type=Path, required=True, help="output directory")
    g.add_argument("--set-size", type=int, default=5, help="images per set")
    g.add_argument("--source", default="procedural", help=SOURCE_HELP)
    g.add_argument("--seed", type=int, default=0, help="master seed: set i is a pure function of (seed, i)")
    g.add_argument("--workers", type=int, default=None, help="processes (default: all cores, max 8)")
    g.add_argument("--shard-sets", type=int, default=200, help="sets per shard file")
    g.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="where structure banks are cached (default $PANCAKES_SYNTH_CACHE or ~/.cache/pancakes-synth)",
    )
    g.add_argument("--bank-size", type=int, default=DEFAULT_BANK, help="procedural structures per bank")
    g.add_argument("--resume", action="store_true", help="finish an interrupted run in OUT")
    g.add_argument("--force", action="store_true", help="replace an earlier pancakes-synth output in OUT")
    g.add_argument(
        "--dask",
        default=None,
        metavar="ADDRESS",
        help="generate shards on a Dask cluster (scheduler address, or local:N); OUT must be shared",
    )
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    p = sub.add_parser(
        "preview", help="draw a grid of a few generated sets", formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--out", type=Path, required=True, help="PNG to write")
    p.add_argument("--sets", type=int, default=4, help="sets to draw")
    p.add_argument("--set-size", type=int, default=5, help="images per set")
    p.add_argument("--source", default="procedural", help=SOURCE_HELP)
    p.add_argument("--seed", type=int, default=0, help="master seed")
    p.add_argument("--cache-dir", type=Path, default=None, help="cache folder (default $PANCAKES_SYNTH_CACHE)")
    p.add_argument("--bank-size", type=int, default=DEFAULT_BANK, help="procedural structures per bank")
    return ap


def _generate(args: argparse.Namespace) -> dict:
    try:
        client = dask_client(args.dask) if args.dask else None
    except ImportError as exc:
        raise ValueError(str(exc)) from exc
    try:
        return generate_dataset(
            args.out,
            n=args.n,
            set_size=args.set_size,
            source=args.source,
            bank_size=args.bank_size,
            seed=args.seed,
            workers=args.workers,
            resume=args.resume,
            force=args.force,
            shard_sets=args.shard_sets,
            cache_dir=args.cache_dir,
            progress=not args.quiet,
            client=client,
        )
    finally:
        if client is not None:
            close_client(client)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 bad input, 130 interrupted, 141 output pipe closed)."""
    try:
        args = _parser().parse_args(argv)
        if args.command == "generate":
            m = _generate(args)
            print(
                f"{m['n_pairs']} pairs in {len(m['shards'])} shard(s), {m['bytes'] / 1e6:.1f} MB, "
                f"{m['seconds']:.1f} s → {args.out}"
            )
        else:
            if args.sets < 1:
                raise ValueError(f"--sets must be >= 1, got {args.sets}")
            if args.out.exists() and args.out.is_dir():
                raise ValueError(f"--out {args.out} is a directory; give a .png file name")
            gen = open_source(
                args.source, set_size=args.set_size, seed=args.seed, cache_dir=args.cache_dir, bank_size=args.bank_size
            )
            path = save_preview([gen.generate(i) for i in range(args.sets)], args.out)
            print(f"preview of {args.sets} sets → {path}")
    except (FileNotFoundError, ValueError) as exc:
        print(f"pancakes-synth: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `pancakes-synth ... | head`: the reader has gone; stop quietly
        return stdout_closed()
    except OSError as exc:  # a full disk, a read-only or forbidden folder: one line, not a traceback
        if (line := write_failure(exc)) is None:
            raise
        print(f"pancakes-synth: error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pancakes-synth: interrupted; finish the run with --resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
