"""Folders of 2D images and masks (PNG/TIFF), paired by file stem → a store dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pancakes_data.importers._slices import prepare_pair
from pancakes_data.io import ReadError, read_image, read_labels
from pancakes_data.preprocess import normalize_intensity
from pancakes_data.store import Dataset, DatasetWriter

__all__ = ["SUFFIXES", "import_folder", "read_2d"]

SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg")


def read_2d(path: Path, *, as_labels: bool = False) -> np.ndarray:
    """Read a 2D image through :mod:`pancakes_data.io` (as displayed: palette colours, RGB(A) →
    luminance), or a mask with :func:`~pancakes_data.io.read_labels` (palette indices kept)."""

    try:
        item = read_labels(path) if as_labels else read_image(path)
    except ReadError as exc:
        raise ValueError(str(exc)) from exc
    arr = item.data
    if item.kind != "2d" or min(arr.shape) < 2:
        raise ValueError(f"{path}: expected a 2D image at least 2 pixels wide, got shape {arr.shape}")
    return np.rint(arr).astype(np.int64) if as_labels else arr


def import_folder(
    images: str | Path,
    masks: str | Path,
    store: str | Path,
    *,
    name: str,
    size: int = 128,
    modality: str = "unknown",
    overwrite: bool = False,
    seed: int = 0,
) -> Dataset:
    """Import ``images/<stem>.png`` with ``masks/<stem>.png`` (integer labels; 0/255 masks → 0/1).

    Every stem is a subject. Unpaired files are an error that names them.
    """
    if size < 16 or size % 16:
        raise ValueError(f"--size must be a multiple of 16 (at least 16), got {size}")
    images, masks = Path(images), Path(masks)
    for d in (images, masks):
        if not d.is_dir():
            raise FileNotFoundError(f"folder does not exist: {d}")
    imgs = {p.stem: p for p in sorted(images.iterdir()) if p.suffix.lower() in SUFFIXES}
    msks = {p.stem: p for p in sorted(masks.iterdir()) if p.suffix.lower() in SUFFIXES}
    if not imgs:
        raise FileNotFoundError(f"{images}: no PNG/TIFF/JPEG images")
    lonely = sorted(set(imgs) ^ set(msks))
    if lonely:
        raise ValueError(f"unpaired files (an image without a mask or the reverse): {lonely[:10]}")
    pairs = []
    values: set[int] = set()
    for stem in sorted(imgs):
        img = read_2d(imgs[stem]).astype(np.float32)
        lab = read_2d(msks[stem], as_labels=True)
        if img.shape != lab.shape:
            raise ValueError(f"{stem}: image shape {img.shape} does not match mask shape {lab.shape}")
        if set(np.unique(lab).tolist()) <= {0, 255}:
            lab = (lab > 0).astype(np.int64)
        values |= set(np.unique(lab).tolist())
        pairs.append((stem, img, lab.astype(np.int64)))
    labels = {int(v): f"label {int(v)}" for v in sorted(values) if v != 0}
    if not labels:
        raise ValueError(f"{masks}: every mask is empty (only background)")
    writer = DatasetWriter(
        store,
        name,
        protocols={"default": labels},
        modality=modality,
        source=str(images),
        size=(size, size),
        overwrite=overwrite,
        source_files=[f for stem in sorted(imgs) for f in (imgs[stem], msks[stem])],
    )
    for stem, img, lab in pairs:
        image2d, maps = prepare_pair(normalize_intensity(img), {"default": lab}, (1.0, 1.0), size)
        writer.add(image2d, maps, subject=stem)
    return writer.close(seed=seed)
