"""What a training recipe actually asks the model to segment: the target kinds it draws, per source.

A config's ``[data.target_mix]`` is what is asked; what is drawn differs, because a set offers a
kind only when its labels allow it (a ``small`` target needs a label ≤ 2 % of every image of the
set) and every source offers different kinds. Stage 5 (MODEL_CARD) asked for 30 % ``small``
targets to make protocols finer on atlas parcels; drawn, 18 % were small, and 71 % of those were
small objects of the scene and procedural sources, not parcels. Decide a mix from this table::

    python -m pancakes_model.training.targetmix configs/stage5-cpu.toml --sets 300
"""

from __future__ import annotations

import argparse
import collections
import sys
from collections.abc import Sequence

import numpy as np

from pancakes_data import SetSampler, UserError
from pancakes_model.training.config import load_config
from pancakes_model.training.data import sampler_config, training_sources
from pancakes_model.training.devset import load_dev

__all__ = ["draw_counts", "main", "render"]


def draw_counts(config: str | None, *, sets: int, s: int = 3, seed: int = 11, overrides: Sequence[str] = ()) -> dict:
    """Draw ``sets`` sets of ``s`` images as training would and count them.

    Returns:
        ``{"counts": {(kind, source): n}, "area": {(kind, source): mean target fraction}, "asked": mix}``.
    """
    cfg = load_config(config, list(overrides))
    dev = load_dev(cfg.val.dev) if cfg.val.dev else None
    sampler = SetSampler(training_sources(cfg, dev), config=sampler_config(cfg))
    counts: collections.Counter = collections.Counter()
    area: dict[tuple[str, str], list[float]] = collections.defaultdict(list)
    for i in range(sets):
        drawn = sampler.sample_set(np.random.default_rng((seed, i)), s)
        key = (drawn["meta"]["target"], drawn["meta"]["source"])
        counts[key] += 1
        area[key].append(float(drawn["targets"][0].float().mean()))
    return {
        "counts": dict(counts),
        "area": {k: float(np.mean(v)) for k, v in area.items()},
        "asked": dict(cfg.data.target_mix) if cfg.data.target_mix else {},
        "own_mix": [s.spec for s in cfg.data.sources if s.target_mix],
    }


def render(result: dict) -> str:
    """The counts as a Markdown table: kind, asked share, drawn share, then each source's part."""
    counts, area = result["counts"], result["area"]
    total = sum(counts.values())
    kinds = sorted({k for k, _ in counts}, key=lambda k: -sum(n for (kk, _), n in counts.items() if kk == k))
    asked = result["asked"]
    norm = sum(asked.values()) or 1.0
    head = "| kind | asked (data.target_mix) | drawn | source | share of the kind | mean target area |"
    lines = [head, "|---|---|---|---|---|---|"]
    for kind in kinds:
        n_kind = sum(n for (k, _), n in counts.items() if k == kind)
        rows = sorted(((src, n) for (k, src), n in counts.items() if k == kind), key=lambda x: -x[1])
        for j, (src, n) in enumerate(rows):
            head = (
                f"| {kind} | {asked.get(kind, 0) / norm:.0%} | {n_kind / total:.0%} ({n_kind})" if j == 0 else "| | |"
            )
            lines.append(f"{head} | {src} | {n / n_kind:.0%} | {area[(kind, src)]:.4f} |")
    own = result.get("own_mix", [])
    note = f" Sources with their own target_mix (not in 'asked'): {', '.join(own)}." if own else ""
    return "\n".join(lines) + f"\n\n{total} sets drawn.{note}\n"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pancakes_model.training.targetmix", description=__doc__.split("\n")[0])
    ap.add_argument("config", help="training config (TOML)")
    ap.add_argument("--sets", type=int, default=300, help="sets to draw (default: %(default)s)")
    ap.add_argument("--set-size", type=int, default=3, help="S of every set (default: %(default)s)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="KEY=VALUE override, as for train")
    args = ap.parse_args(argv)
    if args.sets < 1 or args.set_size < 1:
        print(
            f"targetmix: error: --sets and --set-size must be ≥ 1, got {args.sets} and {args.set_size}", file=sys.stderr
        )
        return 2
    try:
        result = draw_counts(args.config, sets=args.sets, s=args.set_size, overrides=args.overrides)
    except UserError as exc:
        print(f"targetmix: error: {exc}", file=sys.stderr)
        return 2
    print(render(result), end="")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
