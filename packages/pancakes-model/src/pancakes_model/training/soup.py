"""Weight averaging of models of one lineage: a "model soup" (Wortsman et al., ICML 2022) and,
with two ingredients, the interpolation between a model and its fine-tuned continuation (WiSE-FT,
Wortsman et al., CVPR 2022).

Why: every continued CPU stage so far gained on most dev families and lost a little on one (the
stage rule's non-inferiority bound). Runs that start from the same weights stay in one basin of
the loss, so a weighted mean of their parameters is a model of its own that usually keeps most of
the continuation's gains and most of the start's strengths. The result is a candidate like any
other: judged by the stage rule on the dev table, never shipped by construction.

``python -m pancakes_model.training.soup --out SOUP.safetensors default:0.5 runs/x/last.safetensors:0.5``
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch

from pancakes_data import UserError
from pancakes_model.network.model import Pancakes
from pancakes_model.network.weights import WeightsError, load_weights, resolve, save_weights, sha256
from pancakes_model.training.provenance import stage_totals

__all__ = ["average_weights", "main", "parse_ingredient"]


def parse_ingredient(text: str) -> tuple[str, float]:
    """``PATH[:WEIGHT]`` (``default`` names the shipped weights) → (path, weight ≥ 0); weight 1 if absent."""
    path, sep, weight = text.rpartition(":")
    if not sep or not weight or "/" in weight:  # no weight given (or a ':' inside the path)
        return text, 1.0
    try:
        value = float(weight)
    except ValueError:
        raise UserError(f"ingredient {text!r}: the weight after ':' must be a number, got {weight!r}") from None
    if not value >= 0 or value == float("inf"):
        raise UserError(f"ingredient {text!r}: the weight must be a finite number ≥ 0, got {weight}")
    return path, value


def _history_length(provenance: dict) -> tuple[int, int]:
    stages = provenance.get("stages") or []
    return len(stages), sum(int(s.get("steps", 0)) for s in stages)


def average_weights(ingredients: Sequence[tuple[str | Path, float]]) -> Pancakes:
    """The weighted mean of the parameters of models with one architecture.

    Args:
        ingredients: (weights file or ``"default"``, weight) pairs; weights are normalised to sum 1.

    Returns:
        A model with the first ingredient's config and preprocessing (label caps included) and
        ``provenance`` = the longest stage history among the ingredients (ties: the most steps)
        plus one stage of 0 steps that names every ingredient (file name, SHA-256, weight).

    Raises:
        UserError: fewer than one ingredient, weights summing to 0, or models whose architectures
            or preprocessing differ (named).
    """
    if not ingredients:
        raise UserError("give at least one weights file to average")
    total = sum(w for _, w in ingredients)
    if total <= 0:
        raise UserError(f"the ingredient weights sum to {total}; at least one must be > 0")
    models = [load_weights(Pancakes, path) for path, _ in ingredients]
    # a run that grew a set-context branch averages with its start: the start gets the branch with
    # its zero last layer, which is its own function (network/context.py)
    widths = {m.config.set_context for m in models} - {0}
    if len(widths) == 1:
        width = widths.pop()
        models = [m.grow_set_context(width) if m.context is None else m for m in models]
        if any(m.config.context_per_image for m in models):  # likewise a branch that grew per-image inputs
            models = [m if m.config.context_per_image else m.grow_per_image_context() for m in models]
    first = models[0]
    for (path, _), model in zip(ingredients, models):
        # label caps only mask logits at inference; every other field changes what a parameter means
        if replace(model.config, label_caps=()) != replace(first.config, label_caps=()):
            raise UserError(f"{path} has another model config than {ingredients[0][0]}: they cannot be averaged")
        if model.preprocess != first.preprocess:
            raise UserError(f"{path} preprocesses images otherwise than {ingredients[0][0]}: they cannot be averaged")
    soup = {}
    for key, value in first.state_dict().items():
        if not value.is_floating_point():  # counters and the like: the first ingredient's
            soup[key] = value.clone()
            continue
        acc = torch.zeros_like(value, dtype=torch.float64)
        for (_, w), model in zip(ingredients, models):
            acc += (w / total) * model.state_dict()[key].to(torch.float64)
        soup[key] = acc.to(value.dtype)
    out = Pancakes(first.config)
    out.load_state_dict(soup)
    out.preprocess = first.preprocess
    # checkpoints of one resumed run have as many stages as each other; the later one's last stage
    # covers more steps, so ties go to the most training
    longest = max((m.provenance for m in models), key=_history_length)
    stage = {
        "steps": 0,
        "sets_seen": 0,
        "resolution": [],
        "hardware": "weight average (no training)",
        "wall_time_s": 0.0,
        "commit": longest.get("commit", "unknown"),
        "init": "average",
        "sources": [],
        "average": [
            {"weights": "default" if str(p) == "default" else resolve(p).name, "sha256": sha256(resolve(p)),
             "weight": w / total}
            for p, w in ingredients
        ],
    }  # fmt: skip
    stages = [*(longest.get("stages") or []), stage]
    out.provenance = {
        **{k: v for k, v in longest.items() if k not in ("stages", "totals")},
        # the top-level fields describe the last stage (the report's "Model:" line): the average
        "steps": 0,
        "wall_time_s": 0.0,
        "hardware": stage["hardware"],
        "stages": stages,
        "totals": stage_totals(stages),
    }
    return out.eval()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m pancakes_model.training.soup", description=__doc__.split("\n\n")[0].replace("\n", " ")
    )
    ap.add_argument(
        "ingredients", nargs="+", metavar="WEIGHTS[:W]", help="weights files ('default': shipped), weight W"
    )
    ap.add_argument("--out", required=True, type=Path, help="the averaged weights (.safetensors; never overwritten)")
    args = ap.parse_args(argv)
    try:
        if args.out.suffix != ".safetensors":
            raise UserError(f"--out must end in .safetensors, got {args.out}")
        if args.out.exists():
            raise UserError(f"--out {args.out} exists; averaged weights never replace a file")
        soup = average_weights([parse_ingredient(t) for t in args.ingredients])
        save_weights(soup, args.out, provenance=soup.provenance)
    except (UserError, WeightsError) as exc:
        print(f"soup: error: {exc}", file=sys.stderr)
        return 2
    print(f"soup: wrote {args.out} ({len(args.ingredients)} ingredients)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
