"""Texture fields for scene appearance: procedural noise, or crops of real unlabelled images.

Real textures come from the sample images that scikit-image ships inside its wheel (photographs of
bricks, grass, gravel, the moon, a phase-contrast cell, an IHC slide, a retina, the Hubble deep
field; see DATA.md for their licences). Only the image *files* are read — the package's code is
never imported — and only when a source asks for ``textures=skimage``. The crops are high-passed
(no large structure, which would read as an unlabelled object) and normalised, built once and
cached as one ``.npy`` under the synth cache directory.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from pancakes_data.io import atomic_write
from pancakes_synth.smooth import smooth_field
from pancakes_synth.sources import default_cache

__all__ = ["SKIMAGE_TEXTURES", "TextureBank", "skimage_data_dir"]

# The files used (all ship in scikit-image's wheel, skimage/data/).
SKIMAGE_TEXTURES = (
    "brick.png",
    "grass.png",
    "gravel.png",
    "moon.png",
    "cell.png",
    "ihc.png",
    "retina.jpg",
    "hubble_deep_field.jpg",
    "coins.png",
)


def skimage_data_dir() -> Path:
    """Where scikit-image's sample images lie (located without importing scikit-image)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "textures=skimage needs scikit-image's sample images: pip install scikit-image "
            "(pancakes-synth[textures]); or use textures=procedural"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


class TextureBank:
    """Square texture patches (N, T, T), each with zero mean and unit standard deviation.

    Args:
        patches: the patches; ``None`` means procedural noise (no bank).
        names: where each patch came from.
    """

    def __init__(self, patches: np.ndarray | None = None, names: list[str] | None = None) -> None:
        self.patches = patches
        self.names = names or []

    @property
    def spec(self) -> str:
        return "procedural" if self.patches is None else "skimage"

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """One texture field (size, size) float32: a random patch, flipped/rotated, or noise."""
        if self.patches is None:
            return smooth_field(rng, 1, size, coarse=int(rng.choice([8, 16, 32])))[0]
        patch = self.patches[int(rng.integers(len(self.patches)))].astype(np.float32)
        patch = np.rot90(patch, int(rng.integers(4)))
        if rng.random() < 0.5:
            patch = patch[:, ::-1]
        if patch.shape[0] != size:
            patch = ndimage.zoom(patch, size / patch.shape[0], order=1)[:size, :size]
        return np.ascontiguousarray(patch)

    @classmethod
    def from_skimage(
        cls, *, cache_dir: str | Path | None = None, count: int = 256, size: int = 128, seed: int = 0
    ) -> TextureBank:
        """Crops of scikit-image's sample photographs at several scales, cached."""
        root = skimage_data_dir()
        files = [root / f for f in SKIMAGE_TEXTURES if (root / f).is_file()]
        if not files:
            raise FileNotFoundError(f"no sample images in {root}; reinstall scikit-image")
        key = json.dumps([[f.name, f.stat().st_size] for f in files] + [count, size, seed])
        cache = Path(cache_dir) if cache_dir else default_cache()
        path = cache / f"textures-{hashlib.sha256(key.encode()).hexdigest()[:20]}.npy"
        names = [f.name for f in files]
        if path.is_file():
            try:
                return cls(np.load(path), names)
            except (OSError, ValueError):
                pass  # a corrupt cache entry is rebuilt, never trusted
        rng = np.random.default_rng([seed, 0x7E47])
        greys = []
        for f in files:
            with Image.open(f) as im:
                greys.append(np.asarray(im.convert("L"), dtype=np.float32) / 255.0)
        patches = np.empty((count, size, size), np.float16)
        for i in range(count):
            img = greys[i % len(greys)]
            side = int(rng.uniform(0.25, 1.0) * min(img.shape))
            r0 = int(rng.integers(0, img.shape[0] - side + 1))
            c0 = int(rng.integers(0, img.shape[1] - side + 1))
            crop = ndimage.zoom(img[r0 : r0 + side, c0 : c0 + side], size / side, order=1)[:size, :size]
            crop = crop - ndimage.gaussian_filter(crop, size / 16)  # high-pass: texture, not objects
            patches[i] = (crop - crop.mean()) / (crop.std() + 1e-6)
        try:
            cache.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda p: np.save(p, patches))
        except OSError:
            pass  # an unwritable cache only costs the rebuild next time
        return cls(patches, names)
