"""Why the shipped model trails intensity k-means on the mosaic dev family — a diagnosis, no timing.

    python benchmarks/diagnose_mosaic.py [--sets 40]

Mosaic's target is one grey level of a level-set partition (every level a target in turn; a level
is several disconnected regions), with stripe textures and "twin" levels that share a grey value
and differ only by their stripes (``pancakes_synth.heldout``). For every target this finds the
winning (m, k) of the shipped model at S = 3, M = 8, K = 20 and what the winning label covers: if
it scores below 0.7 and its two largest shares of other levels are both ≥ 0.3, the label merged two
levels. A merged pair is a *twin* when the two levels' mean grey (images blurred over their
stripes) differ by less than 0.05, else *neighbours*. Sets are drawn from the dev family's
generator with another seed than the dev sets'. Writes the model card's ``mosaic-diagnosis`` block.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from _common import ROOT, write_block
from scipy import ndimage

from pancakes_eval import compute_set_dice
from pancakes_model import Pancakes
from pancakes_synth.heldout import HeldOutGenerator

M, K, S = 8, 20, 3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", type=int, default=40)
    args = ap.parse_args()
    model = Pancakes.from_pretrained().eval()
    gen = HeldOutGenerator("mosaic", set_size=S, seed=2027)  # the dev sets use seed 2026
    dice, used, low, merged, twins = [], [], 0, 0, 0
    for i in range(args.sets):
        item = gen.get(i)
        with torch.no_grad():
            logits = model(torch.from_numpy(item.images)[None, :, None], M, K, logits=True)[0]
        labels = logits.argmax(2).numpy()  # (S, M, H, W)
        used += [len(np.unique(labels[:, m])) for m in range(M)]
        grey = np.stack([ndimage.gaussian_filter(im, 2.0) for im in item.images])
        levels = int(item.labels.max()) + 1
        means = np.array([grey[item.labels == v].mean() if (item.labels == v).any() else np.nan for v in range(levels)])
        for t in range(levels):
            target = item.labels == t
            if not target.any(axis=(1, 2)).all():
                continue
            win = compute_set_dice(labels, target, num_labels=K)
            d, m, k = win.score, win.protocol, win.label
            dice.append(d)
            if d >= 0.7:
                continue
            low += 1
            pred = labels[:, m] == k
            share = np.array([(pred & (item.labels == v)).sum() for v in range(levels)]) / max(pred.sum(), 1)
            a, b = np.argsort(share)[::-1][:2]
            if share[b] >= 0.3:
                merged += 1
                twins += int(abs(means[a] - means[b]) < 0.05)
    rows = [
        "| what | value |",
        "|---|---|",
        f"| targets (grey levels present in all S images) | {len(dice)} in {args.sets} sets |",
        f"| winning label's Set Dice, mean | {np.mean(dice):.3f} |",
        f"| labels used per protocol, median [min, max] | {np.median(used):.0f} [{min(used)}, {max(used)}] of {K} |",
        f"| targets below 0.7 | {low} ({low / len(dice):.0%}) |",
        f"|   of them, the label merges two levels (each ≥ 0.3 of it) | {merged} ({merged / max(low, 1):.0%}) |",
        f"|     twins (same grey, stripes only) | {twins} |",
        f"|     neighbouring greys | {merged - twins} |",
    ]
    body = "\n".join(
        [f"The shipped model on mosaic sets of the dev family's generator (S = {S}, M = {M}, K = {K}):", "", *rows]
    )
    data = {"targets": len(dice), "mean_dice": float(np.mean(dice)), "low": low, "merged": merged, "twins": twins}
    write_block(
        ROOT / "packages" / "pancakes-model" / "MODEL_CARD.md",
        body,
        name="mosaic-diagnosis",
        data=data,
        command="benchmarks/diagnose_mosaic.py",
    )


if __name__ == "__main__":
    main()
