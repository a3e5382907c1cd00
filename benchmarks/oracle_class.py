"""How far S = 5 can come to S = 1 on the clustered-nuclei-class dev family — an oracle, no model.

    python benchmarks/oracle_class.py [--sets 150]

The family's target is one brightness class (terciles of the whole set's nucleus brightness), but
its images are normalised one by one (0.5–99.5 percentiles, as every input is): a nucleus of the
same brightness lands at different grey values in different images. This measures the best any
rule of the form "pixels whose (lightly blurred) grey value lies in one band, the same band for
the whole set" can reach — what intensity k-means and a protocol label of the model both are — on
the normalised images and on the raw ones, at S = 1 and S = 5, on sets of
``pancakes_synth.heldout_nuclei`` drawn like the dev family's (a class present in every image);
and the same with whole nuclei — a band over each nucleus's mean grey value, the outlines given —
the best a model could do that delineates every nucleus and labels one brightness class.
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


def best_object_band(images: np.ndarray, labels: np.ndarray, target: np.ndarray) -> float:
    """The highest set-mean Dice of "every nucleus whose mean grey value lies in one band, the same
    band for the whole set": an oracle that also knows each nucleus's exact outline (``labels``, an
    id per nucleus), so only the brightness rule can err — what a model that delineates nuclei
    perfectly and gives one label to one brightness class could reach at best."""
    means, areas, hits, owner = [], [], [], []
    for j, (im, lab, tgt) in enumerate(zip(images, labels, target)):
        ids = np.unique(lab[lab > 0])
        if ids.size:
            means.append(ndimage.mean(im, lab, ids))
            areas.append(ndimage.sum(np.ones_like(lab), lab, ids))
            hits.append(ndimage.sum(tgt, lab, ids))
            owner.append(np.full(ids.size, j))
    size = target.sum(axis=(1, 2)).astype(np.float64)
    if not means:
        return 0.0
    mean, area, hit, img = (np.concatenate(v) for v in (means, areas, hits, owner))
    order = np.argsort(mean)
    area, hit, img = area[order], hit[order], img[order]
    s = len(images)
    best = 0.0
    for a in range(mean.size):  # bands between sorted nucleus means: nuclei a..b inclusive
        pred = np.zeros(s)
        inter = np.zeros(s)
        for b in range(a, mean.size):
            pred[img[b]] += area[b]
            inter[img[b]] += hit[b]
            best = max(best, float((2 * inter / np.maximum(pred + size, 1)).mean()))
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
                scores.setdefault((s, f"{name}, whole nuclei"), []).append(best_object_band(images, labels, target))
    rows = [
        "| images | S = 1 | S = 5 | S = 5 − S = 1 | sets (S = 1 / 5) |",
        "|---|---|---|---|---|",
    ]
    for name in [n for base in ("normalised per image", "raw") for n in (base, f"{base}, whole nuclei")]:
        one, five = scores[(1, name)], scores[(5, name)]
        rows.append(
            f"| {name} | {np.mean(one):.3f} | {np.mean(five):.3f} | {np.mean(five) - np.mean(one):+.3f} "
            f"| {len(one)} / {len(five)} |"
        )
    body = "\n".join(
        [
            "Best single grey band shared by the set (oracle: it sees the target), clustered-nuclei-class "
            "sets of the dev family's generator; *whole nuclei*: the band over each nucleus's mean grey "
            "value, the nuclei's exact outlines given (only the brightness rule can err):",
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
