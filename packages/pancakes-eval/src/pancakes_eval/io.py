"""Reading label maps and masks from disk (the ``io`` extra: nibabel, pillow).

Layout written by ``pancakes segment`` and read here::

    OUT/labels/<stem>_m00.png   (or .nii.gz), one file per input and protocol m = 0 … M-1

Ground truth: one mask per input, ``GT/<stem>.png`` (or .tif/.tiff/.nii/.nii.gz).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "GREY_WEIGHTS",
    "MASK_SUFFIXES",
    "MAX_LABELS",
    "PredictionFiles",
    "find_predictions",
    "read_label_image",
    "remap",
    "split_stem",
]

# A copy of pancakes_data.io.GREY_WEIGHTS (pancakes-eval does not depend on pancakes-data; a test
# checks that the copies agree).
GREY_WEIGHTS = (0.299, 0.587, 0.114)
MAX_LABELS = 65536  # distinct label values in one map; a prediction has K ≤ 65,536 labels

MASK_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".ome.tif", ".png", ".tif", ".tiff")
_PROTOCOL = re.compile(r"^(?P<stem>.+)_m(?P<m>\d{2,})$")


def remap(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Label values → 0 … n−1 in value order (``np.unique``): ``(values, remapped)`` with
    ``values[remapped] == labels``. More than ``MAX_LABELS`` distinct values is refused.

    Remap a whole set at once (all its images and protocols), so a label keeps one meaning."""
    arr = np.asarray(labels)
    values, inverse = np.unique(arr, return_inverse=True)
    if values.size > MAX_LABELS:
        raise ValueError(f"label maps hold {values.size:,} distinct values (at most {MAX_LABELS:,})")
    return values, inverse.reshape(arr.shape).astype(np.int32)


def split_stem(path: Path) -> tuple[str, str]:
    """Split a file name into (stem, suffix), treating ``.nii.gz`` as one suffix."""
    name = path.name
    for suf in MASK_SUFFIXES:
        if name.lower().endswith(suf):
            return name[: -len(suf)], suf
    return path.stem, path.suffix


def read_label_image(path: str | Path) -> tuple[np.ndarray, tuple[float, ...] | None]:
    """Read an integer label image and its pixel/voxel spacing.

    Args:
        path: a PNG/TIFF (2D) or NIfTI (2D/3D) file.

    Returns:
        ``(array, spacing)``; ``array`` is ``(H, W)`` or ``(X, Y, Z)`` as stored, spacing comes from
        the NIfTI header (``None`` for PNG/TIFF, which carry no reliable physical size).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file cannot be decoded or is not a 2D/3D single-channel label image.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no such file: {p}")
    _, suffix = split_stem(p)
    if suffix in (".nrrd", ".mha", ".ome.tif"):
        try:  # formats beyond the minimal reader: the reader pancakes segment uses
            from pancakes_data.io import read_image
        except ImportError as exc:
            raise ImportError(f"reading {suffix} files needs pancakes-data: pip install pancakes-data") from exc
        item = read_image(p)
        return np.rint(item.data).astype(np.int64), item.spacing
    try:
        if suffix in (".nii", ".nii.gz"):
            import nibabel as nib

            img = nib.load(str(p))
            arr = np.asanyarray(img.dataobj)
            spacing: tuple[float, ...] | None = tuple(float(z) for z in img.header.get_zooms()[: arr.ndim])
            if arr.ndim == 3 and arr.shape[-1] == 1:
                arr = arr[..., 0]
                spacing = spacing[:2] if spacing else None
        else:
            from PIL import Image

            with Image.open(p) as im:
                arr = np.asarray(im)
            spacing = None
    except ImportError as exc:
        raise ImportError("reading files needs the io extra: pip install 'pancakes-eval[io]'") from exc
    except Exception as exc:  # nibabel / PIL raise many types for corrupt files
        raise ValueError(f"cannot read {p}: {exc}") from exc
    if arr.ndim not in (2, 3):
        raise ValueError(f"{p}: expected a 2D or 3D label image, got shape {arr.shape}")
    return arr, spacing


@dataclass(frozen=True)
class PredictionFiles:
    """Protocol files of one input: ``paths[i]`` is the label map of protocol ``protocols[i]``."""

    stem: str
    paths: tuple[Path, ...]
    protocols: tuple[int, ...] = ()


def find_predictions(pred_dir: str | Path) -> dict[str, PredictionFiles]:
    """Index ``<pred_dir>/labels/<stem>_m{m:02d}.<ext>`` (or the same directly in ``pred_dir``).

    Any protocol numbers are accepted (``pancakes segment --protocol 2 5`` writes only those),
    as long as every input has the same ones.

    Raises:
        FileNotFoundError: the directory is missing or holds no protocol files.
        ValueError: inputs have different protocol numbers.
    """
    root = Path(pred_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"prediction directory does not exist: {root}")
    folder = root / "labels" if (root / "labels").is_dir() else root
    found: dict[str, dict[int, Path]] = {}
    for f in sorted(folder.iterdir()):
        stem, suffix = split_stem(f)
        match = _PROTOCOL.match(stem)
        if not f.is_file() or suffix not in MASK_SUFFIXES or not match:
            continue
        found.setdefault(match["stem"], {})[int(match["m"])] = f
    if not found:
        raise FileNotFoundError(f"no '<stem>_mNN.<png|nii.gz>' label maps in {folder}")
    numbers = {tuple(sorted(v)) for v in found.values()}
    if len(numbers) != 1:
        raise ValueError(f"inputs have different protocols: {sorted(numbers)[:3]}")
    protocols = next(iter(numbers))
    return {stem: PredictionFiles(stem, tuple(by_m[m] for m in protocols), protocols) for stem, by_m in found.items()}
