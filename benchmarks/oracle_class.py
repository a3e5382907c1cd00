"""How far S = 5 can come to S = 1 on the clustered-nuclei-class dev family — an oracle, no model.

    python benchmarks/oracle_class.py [--sets 150]

The family's target is one brightness class (terciles of the whole set's nucleus brightness), but
its images are normalised one by one (0.5–99.5 percentiles, as every input is): a nucleus of the
same brightness lands at different grey values in different images. This measures the best any
rule of the form "pixels whose (lightly blurred) grey value lies in one band, the same band for
the whole set" can reach — what intensity k-means and a protocol label of the model both are — on
the normalised images and on the raw ones, at S = 1 and S = 5, on sets of
``pancakes_synth.heldout_nuclei`` drawn like the dev family's (a class present in every image).
Not a benchmark of speed: it writes the model card's ``oracle-class`` block.
"""

from __future__ import annotations

import argparse

import numpy as np
from _common import ROOT, write_block
from scipy import ndimage

from pancakes_synth.heldout_nuclei import nuclei_set


def _normalise(image: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(image, [0.5, 99.5])
    return np.clip((image - lo) / max(hi - lo, 1e-6), 0, 1)


def best_band(images: np.ndarray, target: np.ndarray, *, cuts: int = 40) -> float:
    """The highest set-mean Dice of one grey band [q_a, q_b] shared by the set (band edges on
    ``cuts`` + 1 quantiles of the set's blurred grey values)."""
    x = np.stack([ndimage.gaussian_filter(im, 1.0) for im in images])
    qs = np.quantile(x, np.linspace(0, 1, cuts + 1))
    size = target.sum(axis=(1, 2))
    best = 0.0
    for a in range(cuts):
        above = x >= qs[a]
        for b in range(a + 1, cuts + 1):
            pred = above & (x <= qs[b])
            inter = (pred & target).sum(axis=(1, 2))
            best = max(best, float((2 * inter / np.maximum(pred.sum(axis=(1, 2)) + size, 1)).mean()))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", type=int, default=150, help="sets drawn per S (those with a class in every image count)")
    args = ap.parse_args()
    scores: dict[tuple[int, str], list[float]] = {}
    for s in (1, 5):
        for i in range(args.sets):
            rng = np.random.default_rng([2027, s, i])  # not the dev sets' seeds: the same family, other sets
            raw, labels, classes, _ = nuclei_set(rng, s, 128)
            target = classes[labels] == int(rng.integers(1, 4))
            if not target.any(axis=(1, 2)).all():
                continue  # the dev family draws only classes present in every image
            for name, images in (("normalised per image", np.stack([_normalise(im) for im in raw])), ("raw", raw)):
                scores.setdefault((s, name), []).append(best_band(images, target))
    rows = [
        "| images | S = 1 | S = 5 | S = 5 − S = 1 | sets (S = 1 / 5) |",
        "|---|---|---|---|---|",
    ]
    for name in ("normalised per image", "raw"):
        one, five = scores[(1, name)], scores[(5, name)]
        rows.append(
            f"| {name} | {np.mean(one):.3f} | {np.mean(five):.3f} | {np.mean(five) - np.mean(one):+.3f} "
            f"| {len(one)} / {len(five)} |"
        )
    body = "\n".join(
        [
            "Best single grey band shared by the set (oracle: it sees the target), clustered-nuclei-class "
            "sets of the dev family's generator:",
            "",
            *rows,
        ]
    )
    data = {f"{s}:{name}": float(np.mean(v)) for (s, name), v in scores.items()}
    write_block(
        ROOT / "packages" / "pancakes-model" / "MODEL_CARD.md",
        body,
        name="oracle-class",
        data=data,
        command="benchmarks/oracle_class.py",
    )


if __name__ == "__main__":
    main()
