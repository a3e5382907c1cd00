"""Held-out synthetic families for development evaluation only — never a training source.

They share no shape or appearance code with the training families (this module imports nothing
from the rest of pancakes-synth but the :class:`SynthSet` container and the :class:`Generator`
interface of ``pancakes_synth.recipe``), so a model that scores well on them has learnt something
that transfers, not the generator's habits. A test fails if a training configuration names them.

* ``spots`` — today's losing case: many similar bright objects of varying brightness on a dark
  background (fluorescent nuclei, spots, puncta), uneven illumination, blur, shot noise. Images of
  a set are new fields of the same sample; the structure to find is the whole foreground.
* ``mosaic`` — regions cut from the level sets of a random sum of plane waves, each with a grey
  level and a stripe texture (about a third share another region's grey and differ by texture
  only); images of a set are rotated and shifted views of one field, so every region keeps its
  label.
* ``nuclei`` — clustered fluorescent nuclei pinned to the real held-out HeLa collection
  (:mod:`pancakes_synth.heldout_nuclei`); targets: the whole foreground or one brightness class.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from pancakes_synth.heldout_nuclei import nuclei_set
from pancakes_synth.recipe import Generator, SynthSet

__all__ = ["HELD_OUT", "HeldOutGenerator"]

HELD_OUT = ("spots", "mosaic", "nuclei")


def _spots(rng: np.random.Generator, s: int, size: int) -> tuple[np.ndarray, np.ndarray, dict]:
    radius = rng.uniform(2.5, 8.0) * size / 128
    density = rng.uniform(0.05, 0.35)
    mean_count = density * size * size / (np.pi * radius**2)
    level, spread = rng.uniform(0.4, 1.0), rng.uniform(0.0, 0.6)
    floor = rng.uniform(0.0, 0.12)
    psf, photons = rng.uniform(0.6, 2.0), float(np.exp(rng.uniform(np.log(8), np.log(250))))
    tilt = rng.uniform(0.0, 0.7)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / size
    images, labels = [], []
    for _ in range(s):
        n = max(3, int(rng.poisson(mean_count)))
        cy, cx = rng.uniform(0, 1, n), rng.uniform(0, 1, n)
        r = radius / size * rng.uniform(0.75, 1.25, n)
        stretch = rng.uniform(1.0, 1.5, n)
        ang = rng.uniform(0, np.pi, n)
        bright = level * np.exp(rng.normal(0, spread, n))
        # each object drawn in its own window; where objects touch, the nearer centre wins
        best = np.full((size, size), np.inf)
        owner = np.zeros((size, size), np.int64)
        for i in range(n):
            reach = int(np.ceil(r[i] * stretch[i] * size)) + 1
            y0, x0 = int(cy[i] * size), int(cx[i] * size)
            ys, xs = (
                slice(max(y0 - reach, 0), min(y0 + reach + 1, size)),
                slice(max(x0 - reach, 0), min(x0 + reach + 1, size)),
            )
            dy, dx = yy[ys, xs] - cy[i], xx[ys, xs] - cx[i]
            u = (dy * np.cos(ang[i]) + dx * np.sin(ang[i])) / stretch[i]
            v = -dy * np.sin(ang[i]) + dx * np.cos(ang[i])
            rel = np.sqrt(u * u + v * v) / r[i]
            win = rel < best[ys, xs]
            best[ys, xs][win] = rel[win]
            owner[ys, xs][win] = i
        inside = best <= 1.0
        signal = np.where(inside, bright[owner] * (1.0 - 0.3 * np.minimum(best, 1.0) ** 2), floor)
        signal = ndimage.gaussian_filter(signal, psf)
        direction = rng.uniform(0, 2 * np.pi)
        light = 1.0 - tilt * (np.cos(direction) * (yy - 0.5) + np.sin(direction) * (xx - 0.5)) * 2
        light *= 1.0 - 0.3 * tilt * ((yy - 0.5) ** 2 + (xx - 0.5) ** 2) * 4
        counts = rng.poisson(np.clip(signal * light, 0, None) * photons)
        img = counts / photons + rng.normal(0, 0.01, signal.shape)
        images.append(img)
        labels.append(inside.astype(np.int64))
    meta = {"radius_px": radius, "photons": photons, "classes": ["background", "objects"]}
    return np.stack(images), np.stack(labels), meta


def _mosaic(rng: np.random.Generator, s: int, size: int) -> tuple[np.ndarray, np.ndarray, dict]:
    n_waves, n_levels = int(rng.integers(4, 9)), int(rng.integers(3, 7))
    freq = rng.uniform(1.0, 4.0, n_waves) * 2 * np.pi
    direction = rng.uniform(0, 2 * np.pi, n_waves)
    phase = rng.uniform(0, 2 * np.pi, n_waves)
    grey = rng.permutation(np.linspace(0.1, 0.9, n_levels)) + rng.normal(0, 0.03, n_levels)
    twins = rng.random(n_levels) < 0.3  # these regions take another's grey: only texture tells them apart
    grey[twins] = grey[rng.integers(0, n_levels, int(twins.sum()))]
    stripe_freq = rng.uniform(10, 40, n_levels)
    stripe_amp = np.where(rng.random(n_levels) < 0.5, rng.uniform(0.02, 0.12, n_levels), 0.0)
    stripe_amp[twins] = rng.uniform(0.08, 0.2, int(twins.sum()))
    base = (np.mgrid[0:size, 0:size].astype(np.float64) + 0.5) / size - 0.5
    probe = sum(np.cos(f * (np.cos(d) * base[0] + np.sin(d) * base[1]) + p) for f, d, p in zip(freq, direction, phase))
    cuts = np.quantile(probe, np.linspace(0, 1, n_levels + 1)[1:-1])
    images, labels = [], []
    for _ in range(s):
        rot, shift = rng.normal(0, 0.2), rng.normal(0, 0.04, 2)
        y = np.cos(rot) * base[0] - np.sin(rot) * base[1] + shift[0]
        x = np.sin(rot) * base[0] + np.cos(rot) * base[1] + shift[1]
        field = sum(np.cos(f * (np.cos(d) * y + np.sin(d) * x) + p) for f, d, p in zip(freq, direction, phase))
        lab = np.searchsorted(cuts, field)
        stripes = np.sin(stripe_freq[lab] * (y + x) * np.pi)
        img = grey[lab] + stripe_amp[lab] * stripes
        img = ndimage.gaussian_filter(img, rng.uniform(0.3, 1.0)) + rng.normal(0, rng.uniform(0.0, 0.05), img.shape)
        images.append(img)
        labels.append(lab.astype(np.int64))
    return np.stack(images), np.stack(labels), {"levels": n_levels}


class HeldOutGenerator(Generator):
    """Sets of a held-out family (same interface as the training generators).

    Args:
        family: ``"spots"`` or ``"mosaic"``.
        set_size: S, images per set.
        seed: master seed; set i is a pure function of (seed, i).
        size: image side.
    """

    def __init__(self, family: str, *, set_size: int = 5, seed: int = 0, size: int = 128) -> None:
        if family not in HELD_OUT:
            raise ValueError(f"unknown held-out family {family!r}; known: {list(HELD_OUT)}")
        if set_size < 1:
            raise ValueError(f"set_size must be >= 1, got {set_size}")
        self.family, self.set_size, self.seed, self._size = family, set_size, int(seed), size

    @property
    def size(self) -> int:
        return self._size

    @property
    def spec(self) -> str:
        return f"heldout:{self.family}"

    def parameters(self) -> dict:
        return {"family": self.family}

    def generate(self, index: int) -> SynthSet:
        rng = np.random.default_rng([self.seed, int(index), 0xD3F])
        classes = None
        if self.family == "nuclei":
            images, labels, classes, meta = nuclei_set(rng, self.set_size, self.size)
        else:
            images, labels, meta = (_spots if self.family == "spots" else _mosaic)(rng, self.set_size, self.size)
        lo = np.percentile(images, 0.5, axis=(1, 2), keepdims=True)
        hi = np.percentile(images, 99.5, axis=(1, 2), keepdims=True)
        images = np.clip((images - lo) / np.maximum(hi - lo, 1e-6), 0, 1).astype(np.float32)
        n = int(labels.max()) + 1
        meta = {"index": int(index), "family": self.family, **meta}
        return SynthSet(images, labels, n, meta, classes if classes is not None else np.arange(n))
