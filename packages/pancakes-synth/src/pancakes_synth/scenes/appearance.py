"""Appearance models per imaging family: how a layout of classes and instances looks.

Each model draws its parameters once per set (``sample``: the tissue contrast, the stain, the
window — what makes a set one study) and renders every image of the set with them (``render``:
per-image noise, illumination and texture placement come from that image's own generator), so a
class looks alike in every image of a set while images still differ like real acquisitions do.

Models: fluorescence, brightfield, phase contrast, DIC, stained histology (converted to grey),
electron microscopy, retinal fundus, OCT, ultrasound, CT (Hounsfield units and a window), MRI
(partial volume, bias field, Rician noise). Any of them can be inverted (``invert`` in ``sample``).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from pancakes_synth.smooth import smooth_field

__all__ = ["APPEARANCES", "GREY_WEIGHTS", "Appearance"]

# ITU-R BT.601 luma, the weights every Pancakes reader uses to turn RGB into grey.
GREY_WEIGHTS = (0.299, 0.587, 0.114)
_HEMATOXYLIN = np.array([0.65, 0.70, 0.29])  # optical density per RGB channel (Ruifrok & Johnston)
_EOSIN = np.array([0.07, 0.99, 0.11])


class Appearance:
    """Base class; subclasses implement ``_sample`` (set level) and ``_render`` (one image)."""

    name = ""

    def sample(self, rng: np.random.Generator, n_classes: int) -> dict:
        """Set-level parameters for layouts with classes 0 … n_classes − 1."""
        params = self._sample(rng, n_classes)
        params["invert"] = bool(rng.random() < 0.15)
        amp = np.where(rng.random(n_classes) < 0.4, rng.uniform(0.03, 0.25, n_classes), 0.0)
        amp[0] *= 0.5  # a textured background reads as clutter, not as a structure
        params["texture_amp"] = amp
        return params

    def render(
        self, rng: np.random.Generator, classes: np.ndarray, factor: np.ndarray, texture: np.ndarray, params: dict
    ) -> np.ndarray:
        """One image (H, W) float32 in [0, 1].

        Args:
            rng: this image's generator (noise, illumination).
            classes: (H, W) class map.
            factor: (H, W) brightness factor of each pixel's instance (1 = the class level).
            texture: (H, W) texture field, zero mean and unit std.
            params: the set's parameters from :meth:`sample`.
        """
        x = np.asarray(self._render(rng, classes, factor, texture, params), dtype=np.float64)
        lo, hi = np.percentile(x, (0.5, 99.5))
        x = np.clip((x - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
        if params["invert"]:
            x = 1.0 - x
        return x.astype(np.float32)

    def _sample(self, rng: np.random.Generator, n_classes: int) -> dict:
        raise NotImplementedError

    def _render(self, rng, classes: np.ndarray, factor: np.ndarray, texture: np.ndarray, p: dict) -> np.ndarray:
        raise NotImplementedError


def _levels(rng: np.random.Generator, n: int, lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
    return rng.uniform(lo, hi, size=n)


def _blur(x: np.ndarray, sigma: float | tuple[float, float]) -> np.ndarray:
    return ndimage.gaussian_filter(x, sigma, mode="reflect") if np.max(sigma) > 0 else x


def _textured(level: np.ndarray, classes: np.ndarray, texture: np.ndarray, p: dict) -> np.ndarray:
    return level * (1.0 + p["texture_amp"][classes] * texture)


class Fluorescence(Appearance):
    """Dark background, bright objects of varying brightness, PSF blur, uneven illumination and
    Poisson–Gaussian noise (photon counting plus read noise)."""

    name = "fluorescence"

    def _sample(self, rng, n):
        signal = _levels(rng, n, 0.25, 1.0)
        dim = rng.random(n) < 0.25
        signal[dim] = rng.uniform(0.05, 0.25, size=int(dim.sum()))  # dim compartments (cytoplasm)
        signal[0] = rng.uniform(0.0, 0.1)
        return {
            "signal": signal,
            "brightness_sd": rng.uniform(0.0, 0.5),
            "psf": rng.uniform(0.4, 2.0),
            "illumination": rng.uniform(0.0, 0.6),
            "photons": float(np.exp(rng.uniform(np.log(4), np.log(400)))),
            "read_noise": rng.uniform(0.0, 0.03),
        }

    def _render(self, rng, classes, factor, texture, p):
        x = _textured(p["signal"][classes] * factor, classes, texture, p)
        x = _blur(np.clip(x, 0, None), p["psf"])
        x = x * (1 + p["illumination"] * smooth_field(rng, 1, x.shape[0], coarse=3)[0]).clip(0.1)
        x = rng.poisson(np.clip(x, 0, None) * p["photons"]) / p["photons"]
        return x + rng.normal(0, p["read_noise"], x.shape)


class Brightfield(Appearance):
    """Bright background, objects darker by their optical density, a dark defocus rim, a gentle
    illumination gradient."""

    name = "brightfield"

    def _sample(self, rng, n):
        od = _levels(rng, n, 0.05, 0.9)
        od[0] = rng.uniform(0.0, 0.1)
        return {"od": od, "rim": rng.uniform(0.0, 0.6), "sigma": rng.uniform(0.3, 1.2), "noise": rng.uniform(0, 0.03)}

    def _render(self, rng, classes, factor, texture, p):
        od = _blur(_textured(p["od"][classes] * factor, classes, texture, p), p["sigma"])
        rim = _blur(od, 2.0) - od
        x = np.exp(-od) - p["rim"] * np.abs(rim)
        x = x * (1 + 0.2 * smooth_field(rng, 1, x.shape[0], coarse=2)[0])
        return x + rng.normal(0, p["noise"], x.shape)


class Phase(Appearance):
    """Phase contrast: objects dark against grey, surrounded by a bright halo."""

    name = "phase"

    def _sample(self, rng, n):
        shift = _levels(rng, n, 0.2, 1.0)
        shift[0] = 0.0
        return {"shift": shift, "halo": rng.uniform(0.5, 2.0), "halo_sigma": rng.uniform(1.5, 5.0), "noise": 0.02}

    def _render(self, rng, classes, factor, texture, p):
        phase = _blur(_textured(p["shift"][classes] * factor, classes, texture, p), 0.7)
        x = 0.5 - 0.3 * phase + 0.3 * p["halo"] * (_blur(phase, p["halo_sigma"]) - phase)
        return x + rng.normal(0, p["noise"], x.shape)


class DIC(Appearance):
    """Differential interference contrast: a relief, bright on one side of each object and dark on
    the other; interiors look like the background."""

    name = "dic"

    def _sample(self, rng, n):
        height = _levels(rng, n, 0.2, 1.0)
        height[0] = 0.0
        return {"height": height, "angle": rng.uniform(0, 2 * np.pi), "shear": rng.uniform(1.0, 2.5), "noise": 0.02}

    def _render(self, rng, classes, factor, texture, p):
        h = _blur(_textured(p["height"][classes] * factor, classes, texture, p), 1.2)
        gy, gx = np.gradient(h)
        relief = (np.sin(p["angle"]) * gy + np.cos(p["angle"]) * gx) * p["shear"]
        return 0.5 + relief + 0.05 * h + rng.normal(0, p["noise"], h.shape)


class Histology(Appearance):
    """Hematoxylin & eosin (or other two-stain) brightfield histology, converted to grey with the
    readers' luma weights: per class stain amounts, Beer–Lambert absorption."""

    name = "histology"

    def _sample(self, rng, n):
        return {
            "h": _levels(rng, n, 0.0, 1.6),
            "e": _levels(rng, n, 0.0, 1.2),
            "sigma": rng.uniform(0.3, 1.0),
            "noise": rng.uniform(0.0, 0.03),
            "hue": rng.normal(0, 0.08, size=(2, 3)),  # stain colour variation between labs
        }

    def _render(self, rng, classes, factor, texture, p):
        h = _blur(_textured(p["h"][classes] * factor, classes, texture, p), p["sigma"])
        e = _blur(_textured(p["e"][classes], classes, texture, p), p["sigma"])
        od = h[..., None] * (_HEMATOXYLIN + p["hue"][0]) + e[..., None] * (_EOSIN + p["hue"][1])
        rgb = np.exp(-np.clip(od, 0, None))
        grey = rgb @ np.asarray(GREY_WEIGHTS)
        return grey + rng.normal(0, p["noise"], grey.shape)


class ElectronMicroscopy(Appearance):
    """Electron micrographs: membranes and organelles dark on grey, strong grain."""

    name = "em"

    def _sample(self, rng, n):
        level = _levels(rng, n, 0.0, 0.8)
        level[0] = rng.uniform(0.4, 0.8)
        return {"level": level, "grain": rng.uniform(0.03, 0.15), "sigma": rng.uniform(0.3, 1.0)}

    def _render(self, rng, classes, factor, texture, p):
        x = _blur(_textured(p["level"][classes] * factor, classes, texture, p), p["sigma"])
        grain = _blur(rng.normal(0, 1, x.shape), 0.6)
        return x + p["grain"] * grain


class Fundus(Appearance):
    """Retinal fundus photographs (green channel): vignetting, dark vessels, a bright disc, black
    outside the circular field of view."""

    name = "fundus"

    def _sample(self, rng, n):
        level = _levels(rng, n, 0.1, 0.6)
        level[0] = rng.uniform(0.5, 0.8)
        if n > 2:
            level[2] = rng.uniform(0.85, 1.0)  # the disc, when the layout has one
        return {"level": level, "vignette": rng.uniform(0.2, 0.7), "fov": rng.random() < 0.6, "noise": 0.02}

    def _render(self, rng, classes, factor, texture, p):
        size = classes.shape[0]
        x = _blur(_textured(p["level"][classes] * factor, classes, texture, p), 0.8)
        yy, xx = (np.mgrid[0:size, 0:size] - (size - 1) / 2) / (size / 2)
        r = np.hypot(yy, xx)
        x = x * (1 - p["vignette"] * r**2)
        if p["fov"]:
            x = np.where(r < 1.0, x, 0.0)
        return x + rng.normal(0, p["noise"], x.shape)


class OCT(Appearance):
    """Optical coherence tomography: bright and dark bands, multiplicative speckle, signal falling
    off with depth, dark noisy background."""

    name = "oct"

    def _sample(self, rng, n):
        level = _levels(rng, n, 0.15, 1.0)
        level[0] = rng.uniform(0.0, 0.08)
        return {"level": level, "speckle": rng.uniform(0.2, 0.8), "falloff": rng.uniform(0.0, 1.0)}

    def _render(self, rng, classes, factor, texture, p):
        x = np.clip(_blur(_textured(p["level"][classes] * factor, classes, texture, p), (0.6, 1.5)), 0, None)
        size = x.shape[0]
        x = x * np.exp(-p["falloff"] * np.linspace(0, 1, size))[:, None]
        speckle = rng.gamma(1 / max(p["speckle"], 1e-3) ** 2, max(p["speckle"], 1e-3) ** 2, x.shape)
        return np.log1p(20 * x * speckle) / np.log1p(20)


class Ultrasound(Appearance):
    """B-mode ultrasound: echogenicity per class, Rayleigh speckle from an anisotropic PSF, acoustic
    shadows below bright structures, log compression, often a sector-shaped field of view."""

    name = "ultrasound"

    def _sample(self, rng, n):
        return {
            "echo": _levels(rng, n, 0.05, 1.0),
            "psf": (rng.uniform(0.6, 1.5), rng.uniform(1.5, 4.0)),
            "shadow": rng.uniform(0.0, 2.0) if rng.random() < 0.4 else 0.0,
            "gain": float(np.exp(rng.uniform(np.log(5), np.log(300)))),
            "sector": rng.random() < 0.4,
        }

    def _render(self, rng, classes, factor, texture, p):
        size = classes.shape[0]
        echo = _textured(p["echo"][classes] * factor, classes, texture, p)
        z = _blur(rng.normal(size=echo.shape), p["psf"]) + 1j * _blur(rng.normal(size=echo.shape), p["psf"])
        x = echo * np.abs(z) / (np.abs(z).mean() + 1e-6)
        if p["shadow"] > 0:  # each bright pixel attenuates everything below it
            bright = (p["echo"][classes] > 0.8).astype(np.float64)
            x = x * np.exp(-p["shadow"] * np.cumsum(bright, axis=0) / size * 4)
        x = np.log1p(p["gain"] * np.clip(x, 0, None)) / np.log1p(p["gain"])
        if p["sector"]:
            yy, xx = np.mgrid[0:size, 0:size] / size
            angle = np.arctan2(xx - 0.5, yy + 0.1)
            x = np.where((np.abs(angle) < 0.6) & (np.hypot(yy + 0.1, xx - 0.5) < 1.05), x, 0.0)
        return x


class CT(Appearance):
    """CT: Hounsfield units per tissue class, quantum noise, then a display window (soft tissue,
    lung, bone, brain presets with jitter) mapped to [0, 1]."""

    name = "ct"
    _TISSUES = ((-1000, -950), (-900, -600), (-120, -60), (-10, 25), (25, 70), (100, 300), (300, 1500))
    _WINDOWS = ((40, 400), (-600, 1500), (400, 1800), (40, 80), (60, 350))

    def _sample(self, rng, n):
        pick = rng.integers(0, len(self._TISSUES), size=n)
        hu = np.array([rng.uniform(*self._TISSUES[i]) for i in pick])
        level, width = self._WINDOWS[int(rng.integers(len(self._WINDOWS)))]
        centre = np.median(hu) if rng.random() < 0.5 else level  # a window that shows this anatomy
        return {
            "hu": hu,
            "noise": rng.uniform(3, 40),
            "sigma": rng.uniform(0.4, 1.2),
            "window": (centre + rng.normal(0, 0.1 * width), width * rng.uniform(0.6, 1.5)),
        }

    def _render(self, rng, classes, factor, texture, p):
        hu = p["hu"][classes] + 60 * p["texture_amp"][classes] * texture + 20 * (factor - 1)
        hu = _blur(hu, p["sigma"]) + rng.normal(0, p["noise"], hu.shape)
        centre, width = p["window"]
        return np.clip((hu - (centre - width / 2)) / width, 0, 1)


class MRI(Appearance):
    """MRI: tissue intensities with partial volume at boundaries (blur before noise), a smooth
    multiplicative bias field, Rician noise and an optional gamma."""

    name = "mri"

    def _sample(self, rng, n):
        return {
            "level": _levels(rng, n),
            "partial_volume": rng.uniform(0.4, 1.5),
            "bias": rng.uniform(0.0, 0.5),
            "noise": rng.uniform(0.0, 0.08),
            "gamma": float(np.exp(rng.uniform(np.log(0.6), np.log(1.6)))) if rng.random() < 0.5 else 1.0,
        }

    def _render(self, rng, classes, factor, texture, p):
        x = _blur(_textured(p["level"][classes] * factor, classes, texture, p), p["partial_volume"])
        x = x * np.exp(p["bias"] * smooth_field(rng, 1, x.shape[0], coarse=4)[0])
        x = np.hypot(x + rng.normal(0, p["noise"], x.shape), rng.normal(0, p["noise"], x.shape))
        return np.clip(x, 0, None) ** p["gamma"]


class Generic(Appearance):
    """The Anatomix recipe: a Gaussian intensity per class, blur and additive noise."""

    name = "generic"

    def _sample(self, rng, n):
        return {"level": _levels(rng, n), "sd": rng.uniform(0.0, 0.06, n), "sigma": rng.uniform(0, 1.2)}

    def _render(self, rng, classes, factor, texture, p):
        x = _textured(p["level"][classes] * factor, classes, texture, p)
        x = x + p["sd"][classes] * rng.normal(0, 1, x.shape)
        return _blur(x, p["sigma"]) + rng.normal(0, 0.02, x.shape)


APPEARANCES: dict[str, Appearance] = {
    a.name: a
    for a in (
        Fluorescence(),
        Brightfield(),
        Phase(),
        DIC(),
        Histology(),
        ElectronMicroscopy(),
        Fundus(),
        OCT(),
        Ultrasound(),
        CT(),
        MRI(),
        Generic(),
    )
}
