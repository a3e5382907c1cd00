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
    "MASK_SUFFIXES",
    "PredictionFiles",
    "find_predictions",
    "read_label_image",
    "split_stem",
]

MASK_SUFFIXES = (".nii.gz", ".nii", ".png", ".tif", ".tiff")
_PROTOCOL = re.compile(r"^(?P<stem>.+)_m(?P<m>\d{2,})$")


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
    """Protocol files of one input: ``paths[m]`` is the label map of protocol m."""

    stem: str
    paths: tuple[Path, ...]


def find_predictions(pred_dir: str | Path) -> dict[str, PredictionFiles]:
    """Index ``<pred_dir>/labels/<stem>_m{m:02d}.<ext>`` (or the same directly in ``pred_dir``).

    Raises:
        FileNotFoundError: the directory is missing or holds no protocol files.
        ValueError: a stem's protocols are not numbered 0 … M-1, or stems disagree on M.
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
    out: dict[str, PredictionFiles] = {}
    n_protocols = {len(v) for v in found.values()}
    if len(n_protocols) != 1:
        raise ValueError(f"inputs have different numbers of protocols: {sorted(n_protocols)}")
    for stem, by_m in found.items():
        if sorted(by_m) != list(range(len(by_m))):
            raise ValueError(f"{stem}: protocols must be numbered 0..M-1, found {sorted(by_m)}")
        out[stem] = PredictionFiles(stem, tuple(by_m[m] for m in range(len(by_m))))
    return out
