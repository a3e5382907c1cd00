"""Evaluation of a Pancakes model on the dev families with baselines (``pancakes evaluate``).

For every dev family of ``configs/dev.toml`` and every S of its ``sizes``: Set Dice, Set IoU and
Set HD95 with 95 % bootstrap CIs over sets, side by side with intensity k-means (consistent across
a set) and per-image Felzenszwalb superpixels (not consistent); the paired margin over the best
baseline at S = 3 and the paired consistency gap (each image of the S = 5 sets scored alone vs the
whole set); the effect of M and K at S = 3; a protocols × images figure. ``--compare OLD`` adds the
stage rule: the model is shipped only when it is non-inferior to OLD on every family (paired CI
lower bound > −0.01) and better on the pooled mean (CI above 0).

Baseline scores depend on the dev sets only, so they are cached next to the results
(``baselines-<hash>.json``, one file per version of the baseline code), each entry keyed by what
makes its sets: the family's definition, S, the number of sets, the seed, M and K — adding sets to
one family recomputes that family's rows only.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import inspect
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from pancakes_data.io.writing import write_text
from pancakes_eval import (
    bootstrap_ci,
    compute_set_diagnosis,
    compute_set_dice,
    compute_set_hd95,
    compute_set_iou,
)
from pancakes_model.network import Pancakes, read_metadata
from pancakes_model.network.weights import resolve, sha256
from pancakes_model.parser import evaluate_arguments
from pancakes_model.render import protocol_grid, save_png
from pancakes_model.training import baselines, validation
from pancakes_model.training.annotations import finetune_evidence, match_evidence, render_annotations
from pancakes_model.training.config import ConfigError
from pancakes_model.training.devset import DevConfig, DevFamily, family_sets, load_dev
from pancakes_model.training.report import render_markdown, write_block
from pancakes_model.training.stagerule import compare_models, paired
from pancakes_model.training.validation import predict_label_grid, predict_labels, set_arrays

__all__ = ["METHODS", "evaluate", "main", "run_from_args"]

METHODS = ("pancakes", "kmeans", "felzenszwalb")


def _predict(method: str, model: Pancakes | None, images: np.ndarray, M: int, K: int) -> np.ndarray:
    """images (S, H, W) → label maps (S, M, H, W)."""
    if method == "pancakes":
        return predict_labels(model, images, M, K)
    if method == "kmeans":
        return baselines.kmeans_protocols(images, M, K)
    return baselines.felzenszwalb_protocols(images, M, K)


def _scores(pred: np.ndarray, y: np.ndarray, K: int) -> tuple[float, float, float]:
    return (
        compute_set_dice(pred, y, num_labels=K).score,
        compute_set_iou(pred, y, num_labels=K).score,
        compute_set_hd95(pred, y, num_labels=K).score,
    )


def _summary(values: Sequence[float], seed: int) -> dict:
    v = np.asarray(values, dtype=np.float64)
    finite = v[np.isfinite(v)]
    ci = bootstrap_ci(finite, seed=seed) if finite.size else None
    nan = float("nan")
    return {
        "mean": ci.estimate if ci else nan,
        "low": ci.low if ci else nan,
        "high": ci.high if ci else nan,
        "n_finite": int(finite.size),
        "values": [float(x) for x in v],
    }


def _baseline_cache(out: Path | None) -> Path | None:
    """The baseline rows' file: one per version of the baselines' code; its entries are keyed by
    :func:`_baseline_key`, so runs over any families, sizes and numbers of sets share it."""
    if out is None:
        return None
    return out / f"baselines-{hashlib.sha256(inspect.getsource(baselines).encode()).hexdigest()[:16]}.json"


def _baseline_key(dev: DevConfig, fam: DevFamily, s: int, n: int, method: str) -> str:
    """What a baseline row is a function of: the family's sets (definition, S, count, seed, store)
    and the budget M, K."""
    what = json.dumps([dataclasses.astuple(fam), s, n, dev.seed, dev.M, dev.K, str(dev.store)])
    return f"{fam.name}|{s}|{method}|{hashlib.sha256(what.encode()).hexdigest()[:16]}"


def _reference_cache(out: Path | None, dev: DevConfig, kw: dict, weights: str) -> Path | None:
    """Where ``--compare``'s scores of the reference weights live: the same dev sets, the same
    weights file (by SHA-256) and the same prediction and scoring code give the same numbers, so a
    second candidate against the shipped model does not pay for the shipped model again."""
    if out is None:
        return None
    families = [dev.family(f) for f in kw["families"]] if kw["families"] else list(dev.families)
    code = "".join(inspect.getsource(m) for m in (sys.modules[__name__], validation, baselines))
    # the same sets as the baseline rows: their keys say what makes each family's sets at each S
    setup = [
        _baseline_key(dev, f, s, kw["n_sets"] or dev.sets_of(f), "pancakes")
        for f in families
        for s in kw["sizes"] or dev.sizes
    ]
    key = f"{setup}|{sha256(resolve(weights))}|{hashlib.sha256(code.encode()).hexdigest()}"
    return out / f"reference-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


def evaluate(
    model: Pancakes,
    dev: DevConfig,
    *,
    families: Sequence[str] | None = None,
    sizes: Sequence[int] | None = None,
    n_sets: int | None = None,
    grid: bool = True,
    figure: str | Path | None = None,
    cache_dir: str | Path | None = None,
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr),
) -> dict:
    """Run the evaluation; returns a JSON-able dict (see module docstring)."""
    model.eval()
    M, K, seed = dev.M, dev.K, dev.seed
    sizes = list(sizes or dev.sizes)
    fams = [dev.family(f) for f in families] if families else list(dev.families)
    n_of = {f.name: n_sets or dev.sets_of(f) for f in fams}
    results: dict = {
        "M": M, "K": K, "n_sets": n_sets or dev.sets, "family_sets": n_of, "seed": seed,
        "sources": {}, "grid": {}, "consistency": {}, "margin": {}, "diagnosis": {},
    }  # fmt: skip
    cache = _baseline_cache(Path(cache_dir) if cache_dir else None)
    cached = json.loads(cache.read_text(encoding="utf-8")) if cache is not None and cache.is_file() else {}
    s_paired = max(sizes)
    for fam in fams:
        for s in sizes:
            sets = family_sets(fam, s=s, n=n_of[fam.name], seed=seed, store=dev.store)
            for method in METHODS:
                t0 = time.perf_counter()
                key = _baseline_key(dev, fam, s, n_of[fam.name], method)
                if method != "pancakes" and key in cached:
                    entry = cached[key]
                else:
                    dice, iou, hd, alone, diag = [], [], [], [], []
                    for b in sets:
                        images, y = set_arrays(b)
                        pred = _predict(method, model, images, M, K)
                        d, i, h = _scores(pred, y, K)
                        dice.append(d), iou.append(i), hd.append(h)
                        if method == "pancakes" and s == 3:
                            diag.append(compute_set_diagnosis(pred, y, num_labels=K).as_dict())
                        if method == "pancakes" and s == s_paired > 1:
                            # the same images one by one (S = 1): the paired cost of consistency
                            alone.append(
                                float(np.nanmean([_scores(pred[j : j + 1], y[j : j + 1], K)[0] for j in range(s)]))
                            )
                    entry = {n: _summary(v, seed) for n, v in (("set_dice", dice), ("set_iou", iou), ("set_hd95", hd))}
                    if alone:
                        results["consistency"][fam.name] = {
                            "S": s,
                            "each_image_alone": float(np.mean(alone)),
                            "whole_set": float(np.mean(dice)),
                            "gap": paired(alone, dice, seed),
                        }
                    if diag:  # over-split (union − single) and too coarse / too fine (precision, recall)
                        results["diagnosis"][fam.name] = {k: float(np.nanmean([v[k] for v in diag])) for k in diag[0]}
                    if method != "pancakes":
                        cached[key] = entry
                results["sources"].setdefault(fam.name, {}).setdefault(str(s), {})[method] = entry
                log(
                    f"S={s} {fam.name:24s} {method:13s} Set Dice {entry['set_dice']['mean']:.3f} "
                    f"({time.perf_counter() - t0:.1f} s)"
                )
        by_s = results["sources"][fam.name]
        if "3" in by_s:
            p = by_s["3"]["pancakes"]["set_dice"]["values"]
            best = max(("kmeans", "felzenszwalb"), key=lambda m: by_s["3"][m]["set_dice"]["mean"])
            results["margin"][fam.name] = {"baseline": best, **paired(p, by_s["3"][best]["set_dice"]["values"], seed)}
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(cached), encoding="utf-8")
    if grid:
        # Effect of M and K (Pancakes, S = 3, Set Dice), like the paper's Figure 9.
        grid_sets = [b for fam in fams for b in family_sets(fam, s=3, n=dev.grid_sets, seed=seed + 1, store=dev.store)]
        shapes = [(mm, kk) for mm in dev.grid_M for kk in dev.grid_K]
        scores: dict[tuple[int, int], list[float]] = {mk: [] for mk in shapes}
        for b in grid_sets:
            images, y = set_arrays(b)
            for (mm, kk), pred in predict_label_grid(model, images, shapes).items():
                scores[mm, kk].append(compute_set_dice(pred, y, num_labels=kk).score)
        results["grid"] = {f"{mm},{kk}": float(np.nanmean(v)) for (mm, kk), v in scores.items()}
    if figure is not None:
        first = family_sets(fams[0], s=5, n=1, seed=seed + 2, store=dev.store)[0]
        images = first["images"][0, :, 0].numpy()
        pred = _predict("pancakes", model, images, M, K)
        save_png(protocol_grid(list(images), pred, titles=[f"image {i}" for i in range(len(images))]), figure)
        results["figure"] = str(figure)
    return results


def run_from_args(args: argparse.Namespace) -> int:
    """``pancakes evaluate`` with parsed arguments (see :func:`pancakes_model.parser.evaluate_arguments`)."""
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s]
    except ValueError:
        raise ConfigError(f"--sizes must be a comma list of whole numbers, got {args.sizes!r}") from None
    dev = load_dev(args.dev)
    if args.store is not None:
        dev = dataclasses.replace(dev, store=str(args.store))
    model = Pancakes.from_pretrained(args.model)
    args.out.mkdir(parents=True, exist_ok=True)
    kw = {
        "families": [f for f in args.families.split(",") if f] or None,
        "sizes": sizes or None,
        "n_sets": args.sets,
        "cache_dir": args.cache,
    }
    results = evaluate(model, dev, grid=not args.no_grid, figure=args.out / "protocols.png", **kw)
    if args.compare:
        reference = _reference_cache(args.cache, dev, kw, args.compare)
        if reference is not None and reference.is_file():
            old = json.loads(reference.read_text(encoding="utf-8"))
        else:
            old = evaluate(Pancakes.from_pretrained(args.compare), dev, grid=False, **kw)
            if reference is not None:
                reference.parent.mkdir(parents=True, exist_ok=True)
                write_text(reference, json.dumps(old))
        results["stage"] = compare_models(results, old, seed=dev.seed)
        # the current model's scores on the same sets: the report's --reference, no second run
        (args.out / "compared.json").write_text(json.dumps(old, indent=1), encoding="utf-8")
    if args.annotations:
        results["annotations"] = {
            "match": match_evidence(model, dev, seed=dev.seed),
            "finetune": finetune_evidence(dev=args.dev),
        }
    table = render_markdown(results, provenance=read_metadata(args.model)["provenance"])
    if args.annotations:
        table += "\n" + render_annotations(**results["annotations"])
    (args.out / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    (args.out / "table.md").write_text(table, encoding="utf-8")
    for path in args.write:
        write_block(path, table)
    print(table)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_from_args(evaluate_arguments(argparse.ArgumentParser(prog="pancakes evaluate")).parse_args(argv))
