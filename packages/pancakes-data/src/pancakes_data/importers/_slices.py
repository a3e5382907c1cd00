"""Volumes → 2D slices → store datasets, the steps the volume importers share: reading a volume
(nnU-Net, body), resampling a slice onto the model grid (nnU-Net, body, folder) and writing the slices as
one dataset (brain, body)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pancakes_data.geometry import SlicePlan
from pancakes_data.io import ReadError, read_image, read_labels
from pancakes_data.store import Dataset, DatasetWriter, split_subjects


def read_volume3d(
    path: Path, *, labels: bool = False, promote_2d: bool = False
) -> tuple[np.ndarray, tuple[float, float, float]]:
    """A volume in canonical (RAS) orientation with its voxel size, through :mod:`pancakes_data.io`.

    Args:
        path: the volume file.
        labels: read it as a label map (:func:`~pancakes_data.io.read_labels`: non-integer values
            refused, naming the file) and return int64.
        promote_2d: a 2D image becomes one slice along z (spacing 1 there); otherwise refused.

    Returns:
        ``(data, spacing)``: data (X, Y, Z) or (X, Y, Z, C) for multi-channel images.

    Raises:
        ValueError: unreadable file, non-integer labels or, without ``promote_2d``, a 2D image.
    """
    try:
        item = read_labels(path) if labels else read_image(path)
    except ReadError as exc:
        raise ValueError(str(exc)) from exc
    if item.kind == "3d":
        data, spacing = item.data, tuple(float(z) for z in item.spacing)
    elif promote_2d:
        data = item.data[:, :, None]
        spacing = (*(float(z) for z in item.spacing), 1.0) if item.spacing else (1.0, 1.0, 1.0)
    else:
        raise ValueError(f"{path}: expected a 3D volume, got {item.kind} {item.data.shape}")
    return (data.astype(np.int64) if labels else data), spacing  # type: ignore[return-value]


def prepare_pair(
    image: np.ndarray, labels: dict[str, np.ndarray], spacing: Sequence[float], size: int
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Square pixels → pad to square → anti-aliased resize (:class:`SlicePlan`); labels resized
    label by label."""
    plan = SlicePlan.for_slice(image.shape, spacing, size)
    return plan.forward(image), {p: plan.forward_labels(lab) for p, lab in labels.items()}


def contiguous_labels(maps: list[np.ndarray], names: dict[int, str]) -> tuple[list[np.ndarray], dict[int, str]]:
    """Renumber the labels seen in ``maps`` to 1..K (keeps label maps small and K honest); names
    follow their labels (``"label V"`` for a value ``names`` lacks)."""
    values = sorted(set(np.unique(np.stack(maps)).tolist()) - {0})
    lut = np.zeros(max(values, default=0) + 1, dtype=np.int64)
    lut[values] = np.arange(1, len(values) + 1)
    return [lut[m] for m in maps], {i + 1: names.get(v, f"label {v}") for i, v in enumerate(values)}


def write_slice_dataset(
    store: Path,
    name: str,
    images: Sequence[np.ndarray],
    protocols: dict[str, tuple[list[np.ndarray], dict[int, str]]],
    subjects: Sequence[str],
    slice_meta: Sequence[dict],
    *,
    modality: str,
    source: str,
    source_files: Sequence[Path],
    overwrite: bool,
    seed: int,
) -> Dataset:
    """Write slices cut from volumes as one store dataset: each protocol's labels renumbered 1..K
    (:func:`contiguous_labels`; a protocol left without labels is dropped), splits by subject.

    Args:
        images: the slices (H, W) in [0, 1], all the same size.
        protocols: ``{protocol: (maps, names)}``, one map (H, W) per slice.
        subjects: the subject of each slice (slices of one subject stay in one split).
        slice_meta: extra metadata per slice (e.g. the axis and index it was cut at).
    """
    final = {}
    for protocol, (maps, names) in protocols.items():
        maps, names = contiguous_labels(maps, names)
        if names:
            final[protocol] = (maps, names)
    writer = DatasetWriter(
        store,
        name,
        protocols={p: names for p, (_, names) in final.items()},
        modality=modality,
        size=tuple(images[0].shape),
        overwrite=overwrite,
        source=source,
        source_files=list(source_files),
    )
    for i, image in enumerate(images):
        writer.add(image, {p: maps[i] for p, (maps, _) in final.items()}, subject=subjects[i], **slice_meta[i])
    return writer.close(splits=split_subjects(subjects, seed=seed))
