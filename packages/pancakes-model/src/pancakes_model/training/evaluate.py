"""Evaluation of a Pancakes model on the dev families with baselines (``pancakes evaluate``).

For every dev family of ``configs/dev.toml`` and every S of its ``sizes``: Set Dice, Set IoU and
Set HD95 with 95 % bootstrap CIs over sets, side by side with intensity k-means (consistent across
a set) and per-image Felzenszwalb superpixels (not consistent); the paired margin over the best
baseline at S = 3 and the paired consistency gap (each image of the S = 5 sets scored alone vs the
whole set); the effect of M and K at S = 3; a protocols × images figure. ``--compare OLD`` adds the
stage rule: the model is shipped only when it is non-inferior to OLD on every family (paired CI
lower bound > −0.01) and better on the pooled mean (CI above 0).

Baseline scores depend on the dev sets only, so they are cached next to the results
(``baselines-<hash>.json``), keyed by the dev config and the baseline code.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from pancakes_eval import compute_set_diagnosis
from pancakes_model.network import Pancakes
from pancakes_model.training import baselines
from pancakes_model.training.devset import DevConfig, family_sets, load_dev
from pancakes_model.training.report import render_markdown, write_block

__all__ = ["METHODS", "compare_models", "evaluate", "main", "run_from_args"]

METHODS = ("pancakes", "kmeans", "felzenszwalb")


def _predict(method: str, model: Pancakes | None, images: np.ndarray, M: int, K: int) -> np.ndarray:
    """images (S, H, W) → label maps (S, M, H, W)."""
    if method == "pancakes":
        with torch.inference_mode():
            x = torch.from_numpy(images)[None, :, None].float()
            return model.predict_labels(x, M, K)[0].numpy()
    if method == "kmeans":
        return baselines.kmeans_protocols(images, M, K)
    return baselines.felzenszwalb_protocols(images, M, K)


def _scores(pred: np.ndarray, y: np.ndarray, K: int) -> tuple[float, float, float]:
    from pancakes_eval import compute_set_dice, compute_set_hd95, compute_set_iou

    return (
        compute_set_dice(pred, y, num_labels=K).score,
        compute_set_iou(pred, y, num_labels=K).score,
        compute_set_hd95(pred, y, num_labels=K).score,
    )


def _summary(values: Sequence[float], seed: int) -> dict:
    from pancakes_eval import bootstrap_ci

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


def _paired(a: Sequence[float], b: Sequence[float], seed: int) -> dict:
    from pancakes_eval import paired_comparison

    pc = paired_comparison(np.asarray(a), np.asarray(b), seed=seed)
    return {"mean": pc.mean_difference, "low": pc.ci.low, "high": pc.ci.high, "n": pc.n}


def _baseline_cache(out: Path | None, dev: DevConfig, families: Sequence[str], sizes, n_sets: int) -> Path | None:
    if out is None:
        return None
    key = json.dumps(
        [
            Path(dev.path).read_text(encoding="utf-8") if dev.path else "",
            list(families),
            list(sizes),
            n_sets,
            inspect.getsource(baselines),
        ]
    )
    return out / f"baselines-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


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
    n_sets = n_sets or dev.sets
    fams = [dev.family(f) for f in families] if families else list(dev.families)
    results: dict = {
        "M": M, "K": K, "n_sets": n_sets, "sources": {}, "grid": {}, "consistency": {}, "margin": {}, "diagnosis": {},
    }  # fmt: skip
    cache = _baseline_cache(Path(cache_dir) if cache_dir else None, dev, [f.name for f in fams], sizes, n_sets)
    cached = json.loads(cache.read_text(encoding="utf-8")) if cache is not None and cache.is_file() else {}
    s_paired = max(sizes)
    for fam in fams:
        for s in sizes:
            sets = family_sets(fam, s=s, n=n_sets, seed=seed, store=dev.store)
            for method in METHODS:
                t0 = time.perf_counter()
                key = f"{fam.name}|{s}|{method}"
                if method != "pancakes" and key in cached:
                    entry = cached[key]
                else:
                    dice, iou, hd, alone, diag = [], [], [], [], []
                    for b in sets:
                        images = b["images"][0, :, 0].numpy()
                        y = b["targets"][0, 0, :, 0].numpy() > 0.5
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
                            "gap": _paired(alone, dice, seed),
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
            results["margin"][fam.name] = {"baseline": best, **_paired(p, by_s["3"][best]["set_dice"]["values"], seed)}
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(cached), encoding="utf-8")
    if grid:
        # Effect of M and K (Pancakes, S = 3, Set Dice), like the paper's Figure 9.
        grid_sets = [b for fam in fams for b in family_sets(fam, s=3, n=dev.grid_sets, seed=seed + 1, store=dev.store)]
        from pancakes_eval import compute_set_dice

        for mm in dev.grid_M:
            for kk in dev.grid_K:
                scores = [
                    compute_set_dice(
                        _predict("pancakes", model, b["images"][0, :, 0].numpy(), mm, kk),
                        b["targets"][0, 0, :, 0].numpy() > 0.5,
                        num_labels=kk,
                    ).score
                    for b in grid_sets
                ]
                results["grid"][f"{mm},{kk}"] = float(np.nanmean(scores))
    if figure is not None:
        from pancakes_model.app.render import protocol_grid, save_png

        first = family_sets(fams[0], s=5, n=1, seed=seed + 2, store=dev.store)[0]
        images = first["images"][0, :, 0].numpy()
        pred = _predict("pancakes", model, images, M, K)
        save_png(protocol_grid(list(images), pred, titles=[f"image {i}" for i in range(len(images))]), figure)
        results["figure"] = str(figure)
    return results


def compare_models(new: dict, old: dict, *, s: str = "3", seed: int = 0) -> dict:
    """The stage rule on two evaluations of the same dev sets: paired new − old per family and
    pooled; ``accept`` when every family's CI lower bound > −0.01 and the pooled CI is above 0."""
    per, pooled_new, pooled_old = {}, [], []
    for fam, by_s in new["sources"].items():
        a = by_s[s]["pancakes"]["set_dice"]["values"]
        b = old["sources"][fam][s]["pancakes"]["set_dice"]["values"]
        per[fam] = _paired(a, b, seed)
        pooled_new += a
        pooled_old += b
    pooled = _paired(pooled_new, pooled_old, seed)
    accept = all(v["low"] > -0.01 for v in per.values()) and pooled["low"] > 0
    return {"S": int(s), "families": per, "pooled": pooled, "accept": bool(accept)}


def build_parser(ap: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    ap = ap or argparse.ArgumentParser(prog="pancakes evaluate", description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="default", help="weights file (default: the shipped model)")
    ap.add_argument("--dev", type=Path, default=Path("configs/dev.toml"), help="dev config (default configs/dev.toml)")
    ap.add_argument("--store", type=Path, default=None, help="dataset store (default: the dev config's)")
    ap.add_argument("--families", default="", help="comma list of dev families (default: all)")
    ap.add_argument("--sets", type=int, default=None, help="sets per (family, S) (default: the dev config's)")
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


def run_from_args(args: argparse.Namespace) -> int:
    import dataclasses

    from pancakes_model.network import read_metadata

    try:
        if args.sets is not None and args.sets < 1:
            raise ValueError(f"--sets must be >= 1, got {args.sets}")
        dev = load_dev(args.dev)
        if args.store is not None:
            dev = dataclasses.replace(dev, store=str(args.store))
        model = Pancakes.from_pretrained(args.model)
        args.out.mkdir(parents=True, exist_ok=True)
        kw = {
            "families": [f for f in args.families.split(",") if f] or None,
            "sizes": [int(s) for s in args.sizes.split(",") if s] or None,
            "n_sets": args.sets,
            "cache_dir": args.cache,
        }
        results = evaluate(model, dev, grid=not args.no_grid, figure=args.out / "protocols.png", **kw)
        if args.compare:
            old = evaluate(Pancakes.from_pretrained(args.compare), dev, grid=False, **kw)
            results["stage"] = compare_models(results, old, seed=dev.seed)
        if args.annotations:
            from pancakes_model.training.annotations import finetune_evidence, match_evidence, render_annotations

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
    except (FileNotFoundError, ValueError, KeyError) as exc:
        print(f"pancakes evaluate: error: {exc}", file=sys.stderr)
        return 2
    print(table)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_from_args(build_parser().parse_args(argv))
