"""The held-out ``nuclei`` dev family: clustered fluorescent nuclei as users bring them.

Development only, like :mod:`pancakes_synth.heldout` (and, like it, this module imports nothing of
pancakes-synth but the :class:`~pancakes_synth.recipe.SynthSet` container; a test checks it).

Each image is a 128² crop at a microscope's native resolution: round-to-oval nuclei with lumpy
outlines and chromatin texture, some touching or overlapping (the nearer centre owns the overlap),
brightness from barely above the background to saturated within one image, blur that changes over
the field, out-of-focus haze from nuclei above and below the plane (not labelled), uneven
illumination and Poisson–Gaussian noise. Images of a set are new fields of the same sample.

Statistics are pinned to the real held-out collection (CTC Fluo-N2DL-HeLa tiles of the
``nuclei-hela`` dev family, measured on its 925 tiles with ≥ 5 % foreground; a test keeps the
generated sets inside these bands):

* objects per tile: median 5, middle half 4–7, 5–95 % 2–9;
* equivalent diameter of whole nuclei: median 27.6 px, middle half 24.5–29.8 px, 6–40 px allowed;
* brightness spread (brightest / dimmest object above background, per tile): median 2.8;
* touching fraction (objects within one pixel of another): mean 0.045.

Labels: every nucleus has its own id; ``classes`` put each into a brightness class (1 dim,
2 medium, 3 bright: terciles of the set), so the targets are the whole foreground or one class.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["PINNED", "nuclei_set"]

# the real collection's statistics (module docstring); the generator's draws are centred on them
PINNED = {
    "count_median": 5.0,
    "count_iqr": (4.0, 7.0),
    "diameter_median": 27.6,
    "diameter_iqr": (24.5, 29.8),
    "spread_median": 2.8,
    "touching_mean": 0.045,
}


def _field(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    """A smooth random field in [0, 1] (illumination, blur and haze maps)."""
    f = ndimage.gaussian_filter(rng.normal(size=(size, size)), sigma, mode="wrap")
    return (f - f.min()) / max(float(f.max() - f.min()), 1e-9)


def _one_image(rng: np.random.Generator, size: int, sample: dict, first_id: int) -> tuple[np.ndarray, np.ndarray, list]:
    n = int(np.clip(rng.poisson(sample["count"]), 2, 12))
    diam = np.clip(sample["diameter"] * rng.lognormal(0.0, 0.12, n), 6.0, 40.0)
    aspect = rng.uniform(1.0, 1.45, n)
    angle = rng.uniform(0, np.pi, n)
    centres = np.empty((n, 2))
    for i in range(n):  # mostly apart, a few touching or overlapping a placed neighbour
        if i and rng.random() < sample["p_touch"]:
            j = int(rng.integers(i))
            d = rng.uniform(0.75, 1.0) * (diam[i] + diam[j]) / 2
            a = rng.uniform(0, 2 * np.pi)
            centres[i] = centres[j] + d * np.array([np.sin(a), np.cos(a)])
            continue
        for _ in range(30):
            c = rng.uniform(-0.1, 1.1, 2) * size
            if i == 0 or np.min(np.hypot(*(centres[:i] - c).T) - (diam[:i] + diam[i]) * 0.6) > 3:
                break
        centres[i] = c
    harmonics = rng.normal(0, 0.05, (n, 3, 2))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    best = np.full((size, size), np.inf)
    owner = np.full((size, size), -1)
    for i in range(n):
        dy, dx = yy - centres[i, 0], xx - centres[i, 1]
        u = (dy * np.cos(angle[i]) + dx * np.sin(angle[i])) / np.sqrt(aspect[i])  # area stays π (d/2)²
        v = (-dy * np.sin(angle[i]) + dx * np.cos(angle[i])) * np.sqrt(aspect[i])
        phi = np.arctan2(v, u)
        bound = 1 + sum(h[0] * np.cos((k + 2) * phi + h[1]) for k, h in enumerate(harmonics[i]))
        rel = np.hypot(u, v) / (diam[i] / 2) / bound
        win = rel < best
        best[win], owner[win] = rel[win], i
    inside = best <= 1.0
    # brightness above background: log-spread so the dimmest may sit barely above it
    level = np.exp(rng.uniform(np.log(sample["dim"]), np.log(sample["bright"]), n))
    texture = ndimage.gaussian_filter(rng.normal(size=(size, size)), rng.uniform(0.8, 2.0))
    texture = 1 + sample["chromatin"] * texture / max(float(texture.std()), 1e-9)
    signal = np.where(inside, level[np.maximum(owner, 0)] * (1 - 0.25 * np.minimum(best, 1) ** 2) * texture, 0.0)
    haze = np.zeros((size, size))
    for _ in range(int(rng.integers(0, 4))):  # out-of-focus nuclei: wide, dim, unlabelled
        c = rng.uniform(0, size, 2)
        haze += rng.uniform(0.05, 0.25) * np.exp(-((yy - c[0]) ** 2 + (xx - c[1]) ** 2) / (2 * rng.uniform(8, 20) ** 2))
    sharp, soft = ndimage.gaussian_filter(signal, sample["blur"][0]), ndimage.gaussian_filter(signal, sample["blur"][1])
    where = _field(rng, size, size / 4)
    img = (1 - where) * sharp + where * soft + ndimage.gaussian_filter(haze, 4.0)
    img = sample["background"] + img * (1 - sample["shading"] * _field(rng, size, size / 2))
    counts = rng.poisson(np.clip(img, 0, None) * sample["photons"])
    img = np.minimum(counts / sample["photons"] + rng.normal(0, sample["read_noise"], img.shape), sample["ceiling"])
    labels = np.where(inside, first_id + owner, 0)
    return img, labels, list(level)


def nuclei_set(rng: np.random.Generator, s: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """One set of S images: raw images (S, size, size), labels (S, size, size) with an id per
    nucleus, ``classes`` (L,) brightness class per id (0 = background), and the drawn parameters."""
    sample = {
        "count": float(rng.uniform(3.5, 7.5)),
        "diameter": float(rng.uniform(23.0, 32.0)) * size / 128,
        "p_touch": float(rng.uniform(0.0, 0.06)),
        "dim": float(rng.uniform(0.06, 0.3)),
        "bright": float(rng.uniform(0.4, 1.3)),
        "chromatin": float(rng.uniform(0.05, 0.3)),
        "blur": (float(rng.uniform(0.4, 1.0)), float(rng.uniform(1.2, 3.0))),
        "background": float(rng.uniform(0.02, 0.12)),
        "shading": float(rng.uniform(0.0, 0.5)),
        "photons": float(np.exp(rng.uniform(np.log(20), np.log(400)))),
        "read_noise": float(rng.uniform(0.002, 0.02)),
        "ceiling": float(rng.uniform(0.7, 1.0)),  # detector saturation
    }
    images, labels, levels = [], [], []
    next_id = 1
    for _ in range(s):
        img, lab, lev = _one_image(rng, size, sample, next_id)
        present = np.unique(lab[lab > 0])
        keep = np.zeros(int(lab.max()) + 1, np.int64)
        keep[present] = np.arange(next_id, next_id + present.size)  # ids of visible nuclei, contiguous
        lab = keep[lab]
        levels += [lev[int(p) - next_id] for p in present]
        next_id += present.size
        images.append(img)
        labels.append(lab)
    cuts = np.quantile(levels, [1 / 3, 2 / 3]) if levels else np.zeros(2)
    classes = np.concatenate([[0], 1 + np.searchsorted(cuts, np.asarray(levels), side="right")]).astype(np.int64)
    return np.stack(images), np.stack(labels).astype(np.int64), classes, sample
