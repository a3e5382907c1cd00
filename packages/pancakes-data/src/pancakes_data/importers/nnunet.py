"""nnU-Net v2 / Medical Segmentation Decathlon raw layout → a store dataset.

    ROOT/dataset.json
    ROOT/imagesTr/<case>_0000.nii.gz   (MSD: <case>.nii.gz, possibly 4D with channels last)
    ROOT/labelsTr/<case>.nii.gz

3D volumes are read in canonical (RAS) orientation and cut into 2D slices as MegaMedical does:
per chosen axis, the middle slice and, for every label, the slice where that label is largest.
Each case is one subject (splits are by subject).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pancakes_data.importers._slices import prepare_pair, read_volume3d
from pancakes_data.preprocess import normalize_intensity
from pancakes_data.store import Dataset, DatasetWriter

__all__ = ["import_nnunet", "read_dataset_json"]


def read_dataset_json(root: Path) -> tuple[dict[int, str], str, str, list[tuple[str, Path, Path]]]:
    """Labels {id: name}, modality, file ending and the (case, image, label) list of a raw tree."""
    path = root / "dataset.json"
    if not path.is_file():
        raise FileNotFoundError(f"{root}: missing dataset.json (not an nnU-Net/MSD raw dataset)")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: invalid JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: must hold a JSON object with 'labels', got a {type(meta).__name__}")
    raw_labels = meta.get("labels")
    if not isinstance(raw_labels, dict) or not raw_labels:
        raise ValueError(f"{path}: 'labels' must be a non-empty mapping")
    labels: dict[int, str] = {}
    for k, v in raw_labels.items():
        if isinstance(v, int | str) and str(v).isdigit() and not str(k).isdigit():  # v2: name → id
            labels[int(v)] = str(k)
        elif str(k).isdigit():  # MSD: id → name
            labels[int(k)] = str(v)
        else:
            raise ValueError(f"{path}: label entry {k!r}: {v!r} is not supported (region-based labels?)")
    labels.pop(0, None)
    channels = meta.get("channel_names") or meta.get("modality") or {"0": "unknown"}
    modality = str(channels.get("0", next(iter(channels.values()))))
    ending = meta.get("file_ending", ".nii.gz")
    label_dir, image_dir = root / "labelsTr", root / "imagesTr"
    if not label_dir.is_dir() or not image_dir.is_dir():
        raise FileNotFoundError(f"{root}: needs imagesTr/ and labelsTr/")
    cases = []
    for lab in sorted(label_dir.glob(f"*{ending}")):
        case = lab.name[: -len(ending)]
        for cand in (image_dir / f"{case}_0000{ending}", image_dir / f"{case}{ending}"):
            if cand.is_file():
                cases.append((case, cand, lab))
                break
        else:
            raise FileNotFoundError(f"{root}: no image for case {case!r} (expected imagesTr/{case}_0000{ending})")
    if not cases:
        raise FileNotFoundError(f"{label_dir}: no '*{ending}' label files")
    with_labels = {c for c, _, _ in cases}
    for img in sorted(image_dir.glob(f"*{ending}")):
        stem = img.name[: -len(ending)]
        channel = len(stem) > 5 and stem[-5] == "_" and stem[-4:].isdigit()  # nnU-Net's _0000 channel suffix
        case = stem[:-5] if channel and stem not in with_labels else stem
        if case not in with_labels:
            raise FileNotFoundError(
                f"{root}: case {case!r} has an image ({img.name}) but no label file (labelsTr/{case}{ending}); "
                "add it or move the image away"
            )
    return labels, modality, ending, cases


def _slice(vol: np.ndarray, axis: int, i: int) -> np.ndarray:
    return np.take(vol, i, axis=axis)


def import_nnunet(
    root: str | Path,
    store: str | Path,
    *,
    name: str | None = None,
    axes: Sequence[int] = (0, 1, 2),
    size: int = 128,
    modality: str | None = None,
    ct_window: tuple[float, float] = (-1000.0, 1000.0),
    overwrite: bool = False,
    seed: int = 0,
) -> Dataset:
    """Import an nnU-Net v2 / MSD raw dataset (see module docstring) into ``store``."""
    root = Path(root)
    if size < 16 or size % 16:
        raise ValueError(f"--size must be a multiple of 16 (at least 16), got {size}")
    labels, mod, _, cases = read_dataset_json(root)
    modality = modality or mod
    is_ct = modality.lower() == "ct"
    for a in axes:
        if a not in (0, 1, 2):
            raise ValueError(f"axes must be within 0, 1, 2 (RAS: sagittal, coronal, axial); got {a}")
    writer = DatasetWriter(
        store,
        name or root.name,
        protocols={"default": labels},
        modality=modality,
        source=str(root),
        size=(size, size),
        overwrite=overwrite,
        source_files=[f for _, img, lab in cases for f in (img, lab)],
    )
    for case, img_path, lab_path in cases:
        img, spacing = read_volume3d(img_path, promote_2d=True)
        lab, _ = read_volume3d(lab_path, labels=True, promote_2d=True)
        if img.ndim == 4:
            img = img[..., 0]
        if img.ndim != 3 or lab.ndim != 3:
            raise ValueError(f"case {case!r}: expected 3D volumes, got image {img.shape} and label {lab.shape}")
        if img.shape != lab.shape:
            raise ValueError(f"case {case!r}: image shape {img.shape} does not match label shape {lab.shape}")
        unknown = sorted(set(np.unique(lab).tolist()) - set(labels) - {0})
        if unknown:
            raise ValueError(f"case {case!r}: label values {unknown} are not in dataset.json")
        norm = normalize_intensity(img, modality="ct" if is_ct else "mr", ct_window=ct_window)
        for axis in axes:
            chosen = {lab.shape[axis] // 2: "mid"}
            other = tuple(a for a in range(3) if a != axis)
            for value in np.unique(lab):
                if value == 0:
                    continue
                area = (lab == value).sum(axis=other)
                chosen.setdefault(int(area.argmax()), f"max:{int(value)}")
            in_plane = [spacing[a] for a in other]
            for i, kind in sorted(chosen.items()):
                image2d, maps = prepare_pair(_slice(norm, axis, i), {"default": _slice(lab, axis, i)}, in_plane, size)
                writer.add(image2d, maps, subject=case, axis=axis, slice=i, kind=kind)
    return writer.close(seed=seed)
