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
    "integer_labels",
    "read_label_image",
    "remap",
    "split_stem",
]

# ITU-R BT.601 luma: RGB → grey everywhere in Pancakes (pancakes-data reads pictures with these).
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


def integer_labels(arr: np.ndarray, path: str | Path) -> np.ndarray:
    """``arr`` as integer labels, or ValueError naming the file and a non-integer value (a mask
    saved as probabilities or resampled with interpolation would otherwise be scored quietly)."""
    a = np.asarray(arr)
    if a.dtype == bool:
        return a.astype(np.uint8)
    if np.issubdtype(a.dtype, np.integer):
        return a
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"{path}: labels must be integers, got values of type {a.dtype}")
    finite = np.isfinite(a)
    if not finite.all():
        raise ValueError(f"{path}: labels must be integers, found {a[~finite].ravel()[0]}")
    frac = a != np.round(a)
    if frac.any():
        raise ValueError(f"{path}: labels must be integers, found value {a[frac].ravel()[0]:g}")
    return a.astype(np.int64)


def _picture(p: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(p) as im:
        arr = np.asarray(im)  # palette images give their indices: the labels annotation tools store
    if arr.ndim == 3:
        if not (arr[..., :3] == arr[..., :1]).all():
            raise ValueError(f"{p}: a colour image is not a label map; save the labels as grey or palette values")
        arr = arr[..., 0]
    return arr


def read_label_image(path: str | Path) -> tuple[np.ndarray, tuple[float, ...] | None]:
    """Read an integer label image and its pixel/voxel spacing — the one label reader of the
    project (pancakes-data and pancakes-synth use it too); torch-free.

    Args:
        path: PNG/TIFF (2D; palette indices kept, colour refused unless grey), NIfTI (2D/3D),
            NRRD, MHA or OME-TIFF (through SimpleITK).

    Returns:
        ``(array, spacing)``; ``array`` is ``(H, W)`` or ``(X, Y, Z)`` as stored with integer values,
        spacing comes from the file's header (``None`` for PNG/TIFF, which carry no reliable size).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file cannot be decoded, is not a 2D/3D single-channel label image, or holds
            values that are not integers.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no such file: {p}")
    _, suffix = split_stem(p)
    spacing: tuple[float, ...] | None = None
    try:
        if suffix in (".nii", ".nii.gz"):
            import nibabel as nib

            img = nib.load(str(p))
            arr = np.asanyarray(img.dataobj)
            spacing = tuple(float(z) for z in img.header.get_zooms()[: arr.ndim])
            if arr.ndim == 4 and arr.shape[-1] == 1:
                arr, spacing = arr[..., 0], spacing[:3]
            if arr.ndim == 3 and arr.shape[-1] == 1:
                arr, spacing = arr[..., 0], spacing[:2]
        elif suffix in (".nrrd", ".mha", ".ome.tif"):
            import SimpleITK as sitk

            img = sitk.ReadImage(str(p))
            arr = sitk.GetArrayFromImage(img).T  # SimpleITK is (z, y, x): back to the stored (x, y, z)
            spacing = tuple(float(s) for s in img.GetSpacing())
            if arr.ndim == 3 and arr.shape[-1] == 1:
                arr, spacing = arr[..., 0], spacing[:2]
            if suffix == ".ome.tif":
                arr, spacing = arr.T, None  # a picture: rows × columns, no reliable size here
        else:
            arr = _picture(p)
    except ImportError as exc:
        raise ImportError("reading files needs the io extra: pip install 'pancakes-eval[io]'") from exc
    except ValueError:
        raise
    except Exception as exc:  # nibabel / PIL / SimpleITK raise many types for corrupt files
        kind = {".nii": "NIfTI ", ".nii.gz": "NIfTI ", ".nrrd": "NRRD ", ".mha": "MHA "}.get(suffix, "")
        raise ValueError(f"cannot read {kind}{p}: {exc}") from exc
    if arr.ndim not in (2, 3):
        raise ValueError(f"{p}: expected a 2D or 3D label image, got shape {arr.shape}")
    return integer_labels(arr, p), spacing


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
