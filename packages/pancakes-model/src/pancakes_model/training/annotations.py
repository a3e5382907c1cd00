"""Evidence for working from a person's annotations (``pancakes evaluate --annotations``).

Matching: on dev sets, image 0 with its target is the example; the candidate it picks (the
``pancakes match`` rule) is scored on the other images of the set, next to the best candidate for
those images (the oracle) and to the k-means candidate picked by the same rule; an unrelated mask
(a small disk at a random place) should raise the warning. Fine-tuning: ``pancakes finetune`` on 5
and on 20 annotated images of the held-out spots family, Set Dice on test pairs before and after.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from pancakes_eval import compute_dice
from pancakes_model.inference.matching import WARN_BELOW, MatchResult, rank_candidates
from pancakes_model.training.baselines import kmeans_protocols
from pancakes_model.training.devset import GENERATED_FAMILIES, DevConfig, family_sets
from pancakes_model.training.finetune import run_finetune
from pancakes_model.training.validation import predict_labels, set_arrays

__all__ = ["finetune_evidence", "match_evidence", "render_annotations"]


def _picked(maps: np.ndarray, y: np.ndarray, K: int) -> float:
    """Dice on images 1… of the candidate picked on image 0 — maps (S, M, H, W), y (S, H, W)."""
    protocol, assignment, _, _ = rank_candidates([maps[0]], [y[0].astype(np.int64)], K=K)
    chosen = MatchResult(protocol, assignment, 0.0, [])
    # both empty counts as a perfect match here, as before (the target is present in every dev image)
    return float(np.mean([compute_dice(chosen.apply(maps[i]) > 0, y[i], both_empty=1.0) for i in range(1, len(y))]))


def _oracle(maps: np.ndarray, y: np.ndarray, K: int) -> float:
    _, _, score, _ = rank_candidates(list(maps[1:]), [t.astype(np.int64) for t in y[1:]], K=K)
    return score


def match_evidence(model, dev: DevConfig, *, sizes=(3, 5), n_sets: int = 20, seed: int = 0) -> dict:
    M, K = dev.M, dev.K
    rng = np.random.default_rng(seed)
    out: dict = {}
    for fam in dev.families:
        for s in sizes:
            rows = {"pancakes": [], "oracle": [], "kmeans": [], "warned": []}
            for b in family_sets(fam, s=s, n=n_sets, seed=dev.seed + 3, store=dev.store):
                images, y = set_arrays(b)
                maps = predict_labels(model, images, M, K)
                rows["pancakes"].append(_picked(maps, y, K))
                rows["oracle"].append(_oracle(maps, y, K))
                rows["kmeans"].append(_picked(kmeans_protocols(images, M, K), y, K))
                h, w = y.shape[1:]
                yy, xx = np.indices((h, w))
                cy, cx = rng.integers(8, h - 8), rng.integers(8, w - 8)
                unrelated = ((yy - cy) ** 2 + (xx - cx) ** 2 < 25).astype(np.int64)
                _, _, score, _ = rank_candidates([maps[0]], [unrelated], K=K)
                rows["warned"].append(score < WARN_BELOW)
            out[f"{fam.name}|{s}"] = {k: float(np.mean(v)) for k, v in rows.items()}
    return out


def finetune_evidence(
    *, counts=(5, 20), minutes: float = 2.0, seed: int = 0, dev: str | Path = "configs/dev.toml"
) -> dict:
    """``pancakes finetune`` on ``counts`` annotated images of the held-out spots family."""
    fam = GENERATED_FAMILIES[0]
    out = {}
    for n in counts:
        with tempfile.TemporaryDirectory(prefix="pancakes-finetune-evidence-") as tmp:
            root = Path(tmp)
            (root / "img").mkdir()
            (root / "lab").mkdir()
            batch = family_sets(fam, s=n, n=1, seed=seed + 77, store=".")[0]
            for i in range(n):
                img = (batch["images"][0, i, 0].numpy() * 255).astype(np.uint8)
                Image.fromarray(img).save(root / "img" / f"a{i:02d}.png")
                Image.fromarray(batch["targets"][0, 0, i, 0].numpy().astype(np.uint8)).save(
                    root / "lab" / f"a{i:02d}.png"
                )
            summary = run_finetune(
                root / "img",
                root / "lab",
                root / "tuned.safetensors",
                minutes=minutes,
                seed=seed,
                dev=dev,
                score_sets=10,
            )
            out[str(n)] = summary
    return out


def render_annotations(match: dict | None, finetune: dict | None) -> str:
    lines: list[str] = []
    if match:
        lines += [
            "Choosing from ONE annotated example (image 0 of each set; scored on the set's other images, Set Dice "
            "of the picked structure):",
            "",
            "| dev family | S | picked (Pancakes) | oracle | oracle − picked | k-means, same rule "
            "| unrelated mask warned |",
            "|---|---|---|---|---|---|---|",
        ]
        for key, r in match.items():
            fam, s = key.split("|")
            lines.append(
                f"| {fam} | {s} | {r['pancakes']:.3f} | {r['oracle']:.3f} | {r['oracle'] - r['pancakes']:+.3f} "
                f"| {r['kmeans']:.3f} | {r['warned']:.0%} |"
            )
        lines.append("")
    if finetune:
        lines += [
            "Fine-tuning on annotated images of the held-out spots family (`pancakes finetune`, CPU):",
            "",
            "| annotated images | train / val / test | steps | test Set Dice before → after | dev pooled drop |",
            "|---|---|---|---|---|",
        ]
        for n, r in finetune.items():
            p = r["pairs"]
            lines.append(
                f"| {n} | {p['train']} / {p['val']} / {p['test']} | {r['steps']} | {r['test_set_dice_before']:.3f} → "
                f"{r['test_set_dice_after']:.3f} | {r['dev_pooled_drop']:+.3f} |"
            )
        lines.append("")
    return "\n".join(lines)
