"""Labelled microscopy stacks → store tiles at native resolution.

A 700 × 1100 field of nuclei resized to 128² leaves nuclei two pixels wide; users bring crops at
their microscope's resolution, so fields are cut into ``size × size`` tiles instead (a grid with the
last row and column shifted to end at the border), optionally after a zoom (``scale`` < 1 shrinks
big objects towards the sizes users meet). Tiles with too little foreground are skipped.

Inputs are pairs of an image and an instance label map of the same shape, as files (TIFF, or any
format :mod:`pancakes_data.io` reads) or arrays: 2D (H, W), a time series or z-stack (T, H, W), or a
3D time series (T, Z, H, W); every 2D plane is one image, and the subject of a tile is its plane,
so a split never puts two tiles of one plane apart.

Protocols written from the instance labels:

* ``foreground`` — 1 = any object (nuclei, cells, bacteria) against the background;
* ``brightness`` — objects grouped by their mean raw intensity into terciles of the whole
  collection (1 dim, 2 medium, 3 bright): the "one brightness class" target.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage

from pancakes_data.io import ReadError, read_image
from pancakes_data.preprocess import normalize_intensity
from pancakes_data.store import Dataset, DatasetWriter

__all__ = ["PROTOCOLS", "import_tiles", "read_stack", "tile_origins"]

PROTOCOLS = {
    "foreground": {1: "object"},
    "brightness": {1: "dim objects", 2: "medium objects", 3: "bright objects"},
}


def read_stack(path: str | Path) -> np.ndarray:
    """A labelled-microscopy file as an array of 2D planes (..., H, W), exactly as stored (TIFF
    pages in order; no channel or z interpretation, unlike the user-facing readers)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        try:
            return np.asarray(tifffile.imread(path))
        except Exception as exc:  # tifffile raises several types for damaged files
            raise ValueError(f"cannot read TIFF {path}: {exc}") from exc

    try:
        return np.asarray(read_image(path).data)
    except ReadError as exc:
        raise ValueError(str(exc)) from exc


def tile_origins(length: int, size: int) -> list[int]:
    """Start offsets of tiles of ``size`` covering ``length`` (the last one ends at the border)."""
    if length <= size:
        return [0]
    starts = list(range(0, length - size + 1, size))
    if starts[-1] + size < length:
        starts.append(length - size)
    return starts


def _planes(image: np.ndarray, labels: np.ndarray, name: str) -> list[tuple[str, np.ndarray, np.ndarray]]:
    if image.shape != labels.shape:
        raise ValueError(f"{name}: image shape {image.shape} does not match label shape {labels.shape}")
    if image.ndim not in (2, 3, 4):
        raise ValueError(f"{name}: expected (H, W), (T, H, W) or (T, Z, H, W), got shape {image.shape}")
    if not np.issubdtype(labels.dtype, np.integer) and not np.array_equal(labels, np.round(labels)):
        raise ValueError(f"{name}: the label map holds non-integer values; labels must be integers")
    lead = image.shape[:-2]
    return [
        (f"{name}:" + ",".join(str(i) for i in idx) if idx else name, image[idx], labels[idx].astype(np.int64))
        for idx in np.ndindex(*lead)
    ]


def _zoom(image: np.ndarray, labels: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    if scale == 1.0:
        return image.astype(np.float32), labels
    img = ndimage.zoom(image.astype(np.float32), scale, order=1, prefilter=False)
    lab = ndimage.zoom(labels, scale, order=0, prefilter=False)
    return img, lab


def import_tiles(
    pairs: Sequence[tuple[str | Path | np.ndarray, str | Path | np.ndarray]],
    store: str | Path,
    *,
    name: str,
    size: int = 128,
    scales: Sequence[float] = (1.0,),
    min_foreground: float = 0.05,
    modality: str = "fluorescence microscopy",
    source: str = "",
    names: Sequence[str] | None = None,
    overwrite: bool = False,
    seed: int = 0,
) -> Dataset:
    """Import (image, instance labels) pairs as tiles (see module docstring).

    Args:
        pairs: files or arrays; arrays need ``names``.
        store: the store directory.
        name: dataset name.
        size: tile side.
        scales: zoom factors applied before tiling (each gives its own tiles).
        min_foreground: least fraction of object pixels for a tile to be kept.
        source: provenance text stored with the dataset.
        names: a name per pair (default: the image file names).

    Raises:
        ValueError: mismatched shapes, non-integer labels, bad sizes or no tile kept.
    """
    if size < 16 or size % 16:
        raise ValueError(f"tile size must be a multiple of 16 (at least 16), got {size}")
    if not scales or any(not 0.05 <= s <= 4 for s in scales):
        raise ValueError(f"scales must lie within [0.05, 4], got {list(scales)}")
    if not 0 <= min_foreground < 1:
        raise ValueError(f"min_foreground must lie within [0, 1), got {min_foreground}")
    files: list[Path] = []
    planes: list[tuple[str, np.ndarray, np.ndarray]] = []
    for i, (img, lab) in enumerate(pairs):
        label = names[i] if names is not None else Path(str(img)).name
        if not isinstance(img, np.ndarray):
            files += [Path(img), Path(lab)]
            img, lab = read_stack(img), read_stack(lab)
        planes += _planes(np.asarray(img), np.asarray(lab), label)
    if not planes:
        raise ValueError("no image/label pairs given")
    # brightness classes: terciles of the objects' mean raw intensity over the whole collection
    means = []
    for _, img, lab in planes:
        ids = np.unique(lab[lab > 0])
        if ids.size:
            means.append(ndimage.mean(img.astype(np.float64), lab, ids))
    if not means:
        raise ValueError(f"dataset {name!r}: every label map is empty")
    cuts = np.quantile(np.concatenate(means), [1 / 3, 2 / 3])
    writer = DatasetWriter(
        store, name, protocols=PROTOCOLS, modality=modality, source=source, size=(size, size),
        overwrite=overwrite, source_files=files,
    )  # fmt: skip
    kept = 0
    for subject, img, lab in planes:
        ids = np.unique(lab[lab > 0])
        lut = np.zeros(int(lab.max()) + 1, np.int64)
        if ids.size:
            lut[ids] = 1 + np.searchsorted(cuts, ndimage.mean(img.astype(np.float64), lab, ids), side="right")
        for scale in scales:
            im, lb = _zoom(img, lab, scale)
            for y in tile_origins(im.shape[0], size):
                for x in tile_origins(im.shape[1], size):
                    crop_l = lb[y : y + size, x : x + size]
                    if crop_l.shape != (size, size) or (crop_l > 0).mean() < min_foreground:
                        continue
                    crop_i = normalize_intensity(im[y : y + size, x : x + size])
                    maps = {"foreground": (crop_l > 0).astype(np.int64), "brightness": lut[crop_l]}
                    writer.add(crop_i, maps, subject=subject, y=y, x=x, scale=scale)
                    kept += 1
    if not kept:
        raise ValueError(f"dataset {name!r}: no {size}² tile has ≥ {min_foreground:.0%} foreground")
    return writer.close(seed=seed)
