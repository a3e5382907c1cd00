"""The on-disk store: a collection of 2D datasets at a fixed size (128×128 by default).

Layout (one folder per dataset; everything memory-mapped, nothing loaded whole)::

    STORE/<dataset>/dataset.json          metadata (below)
    STORE/<dataset>/images.npy            (N, H, W) float16 in [0, 1]
    STORE/<dataset>/labels/<protocol>.npy (N, H, W) uint8, or uint16 when ids exceed 255
    STORE/<dataset>/counts/<protocol>.npy (N, K_p) int32 pixel count of every label in every image

``dataset.json``::

    {"format": "pancakes-data/1", "name": ..., "modality": ..., "source": ..., "n_images": N,
     "image_size": [H, W],
     "subjects": [subject id of image i, ...],            # length N
     "splits": {"train": [subject, ...], "val": [...], "test": [...]},   # by subject
     "protocols": {"<protocol>": {"labels": {"1": "name", ...}, "dtype": "uint8"}},
     "images_meta": [{"subject": ..., "axis": ..., "slice": ...}, ...] (optional),
     "source_files": [{"name": file name, "sha256": ...}, ...] (every file the import read)}

Label 0 is background in every protocol. ``counts`` lets the set sampler find "S images in which
label k is present" without reading any label map.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pancakes_data.errors import UserError

__all__ = ["FORMAT", "Dataset", "DatasetWriter", "Store", "file_sha256", "split_subjects"]

FORMAT = "pancakes-data/1"


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks (bounded memory for any size)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def split_subjects(subjects: Sequence[str], *, fractions=(0.8, 0.1, 0.1), seed: int = 0) -> dict[str, list[str]]:
    """Split unique subject ids into train/val/test (seeded; every split non-empty when possible)."""
    uniq = sorted(set(subjects))
    rng = np.random.default_rng(seed)
    order = [uniq[i] for i in rng.permutation(len(uniq))]
    n = len(order)
    n_val = max(1, round(fractions[1] * n)) if n >= 3 else 0
    n_test = max(1, round(fractions[2] * n)) if n >= 3 else 0
    return {
        "train": sorted(order[: n - n_val - n_test]),
        "val": sorted(order[n - n_val - n_test : n - n_test]),
        "test": sorted(order[n - n_test :]),
    }


class DatasetWriter:
    """Append images and their label maps, then :meth:`close` to write the dataset atomically.

    Everything is written into ``<dataset>.tmp`` and renamed at the end, so an interrupted import
    never leaves a half-written dataset that looks complete.

    Args:
        root: the store directory.
        name: dataset name (folder name).
        protocols: protocol name → {label id: label name} (0 = background, implicit).
        modality: free text ("T1w MRI", "CT", "microscopy", …).
        source: where the data came from (path, package, licence note).
        size: (H, W) of every image.
        overwrite: replace an existing dataset of that name.
        source_files: every file the import reads; their hashes are recorded so that training can
            refuse any file a development family uses, whatever its name or path.
    """

    def __init__(
        self,
        root: str | Path,
        name: str,
        *,
        protocols: dict[str, dict[int, str]],
        modality: str = "unknown",
        source: str = "",
        size: tuple[int, int] = (128, 128),
        overwrite: bool = False,
        source_files: Sequence[str | Path] = (),
    ) -> None:
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"invalid dataset name {name!r}")
        if not protocols:
            raise ValueError("a dataset needs at least one protocol")
        self.root, self.name, self.size = Path(root), name, tuple(size)
        self.final = self.root / name
        if self.final.exists() and not overwrite:
            raise ValueError(f"dataset {name!r} already exists in {self.root}; pass overwrite (--force) to replace it")
        if self.final.exists() or self.final.is_symlink():
            _check_replaceable(self.final)
        self.tmp = self.root / f".{name}.tmp"
        self.protocols = {
            p: {int(k): str(v) for k, v in labels.items() if int(k) != 0} for p, labels in protocols.items()
        }
        self.meta = {"modality": modality, "source": source}
        self.source_files = [Path(f) for f in source_files]
        self.images: list[np.ndarray] = []
        self.labels: dict[str, list[np.ndarray]] = {p: [] for p in protocols}
        self.subjects: list[str] = []
        self.images_meta: list[dict] = []

    def add(self, image: np.ndarray, labels: dict[str, np.ndarray], *, subject: str, **meta) -> None:
        """Add one image (H, W) in [0, 1] with one label map (H, W) per protocol."""
        img = np.asarray(image, dtype=np.float32)
        if img.shape != self.size:
            raise ValueError(f"image has shape {img.shape}, the dataset stores {self.size}")
        if not np.all(np.isfinite(img)):
            raise ValueError(f"image of subject {subject!r} contains NaN or inf")
        missing = set(self.protocols) - set(labels)
        if missing:
            raise ValueError(f"labels missing for protocols {sorted(missing)}")
        for p, lab in labels.items():
            lab = np.asarray(lab)
            if lab.shape != self.size:
                raise ValueError(f"label map {p!r} has shape {lab.shape}, image {self.size}")
            self.labels[p].append(lab.astype(np.int64))
        self.images.append(np.clip(img, 0, 1).astype(np.float16))
        self.subjects.append(str(subject))
        self.images_meta.append({"subject": str(subject), **meta})

    def close(self, *, splits: dict[str, list[str]] | None = None, seed: int = 0) -> Dataset:
        """Write everything and return the readable :class:`Dataset`."""
        if not self.images:
            raise ValueError(f"dataset {self.name!r}: no images were added")
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        (self.tmp / "labels").mkdir(parents=True)
        (self.tmp / "counts").mkdir()
        np.save(self.tmp / "images.npy", np.stack(self.images))
        proto_meta = {}
        for p, maps in self.labels.items():
            arr = np.stack(maps)
            k = max(int(arr.max()), max(self.protocols[p], default=0)) + 1
            dtype = np.uint8 if k <= 256 else np.uint16
            np.save(self.tmp / "labels" / f"{p}.npy", arr.astype(dtype))
            flat = arr.reshape(arr.shape[0], -1)
            counts = np.stack([np.bincount(row, minlength=k) for row in flat]).astype(np.int32)
            np.save(self.tmp / "counts" / f"{p}.npy", counts)
            names = {
                str(i): self.protocols[p].get(i, f"label {i}")
                for i in range(1, k)
                if counts[:, i].any() or i in self.protocols[p]
            }
            proto_meta[p] = {"labels": names, "dtype": np.dtype(dtype).name}
        meta = {
            "format": FORMAT,
            "name": self.name,
            **self.meta,
            "n_images": len(self.images),
            "image_size": list(self.size),
            "subjects": self.subjects,
            "splits": splits or split_subjects(self.subjects, seed=seed),
            "protocols": proto_meta,
            "images_meta": self.images_meta,
            "source_files": [
                {"name": f.name, "sha256": file_sha256(f)} for f in sorted(set(self.source_files), key=str)
            ],
        }
        (self.tmp / "dataset.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        if self.final.exists() or self.final.is_symlink():
            try:
                _check_replaceable(self.final)  # again: someone may have put a file there while we worked
            except UserError:
                shutil.rmtree(self.tmp, ignore_errors=True)
                raise
            shutil.rmtree(self.final)
        self.tmp.replace(self.final)
        return Dataset(self.final)


def _check_replaceable(folder: Path) -> None:
    """Refuse to replace ``folder`` unless it holds exactly what a dataset writes (dataset.json,
    images.npy, labels/*.npy, counts/*.npy): ``--force`` replaces a dataset, never a user's files.

    Raises:
        UserError: naming the first path that is not part of a dataset.
    """
    if folder.is_symlink() or not folder.is_dir() or not (folder / "dataset.json").is_file():
        raise UserError(f"{folder} is not a dataset of the store; --force replaces datasets only, so it is left alone")
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        ours = (
            rel.as_posix() in ("dataset.json", "images.npy", "labels", "counts")
            or (len(rel.parts) == 2 and rel.parts[0] in ("labels", "counts") and rel.suffix == ".npy")
        ) and not path.is_symlink()
        if not ours:
            raise UserError(
                f"{path} is not part of dataset {folder.name!r}; --force would delete it, so nothing was replaced "
                "(move it out of the store first)"
            )


@dataclass
class _Proto:
    labels: dict[int, str]
    maps: np.ndarray  # memmap (N, H, W)
    counts: np.ndarray  # (N, K)


class Dataset:
    """A dataset of the store, opened lazily (arrays are memory-mapped)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        meta_path = self.path / "dataset.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"{self.path}: no dataset.json (not a pancakes-data dataset)")
        self.meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if self.meta.get("format") != FORMAT:
            raise ValueError(f"{meta_path}: unsupported format {self.meta.get('format')!r}")
        self.name: str = self.meta["name"]
        root = self.path.resolve()
        for proto in self.meta.get("protocols", {}):
            for sub in ("labels", "counts"):
                target = (root / sub / f"{proto}.npy").resolve()
                if not target.is_relative_to(root / sub):
                    raise ValueError(
                        f"{meta_path}: protocol name {proto!r} points outside the dataset; refusing to read it"
                    )
        self._images: np.ndarray | None = None
        self._protocols: dict[str, _Proto] = {}

    def __len__(self) -> int:
        return int(self.meta["n_images"])

    def __repr__(self) -> str:
        return f"Dataset({self.name!r}, {len(self)} images, protocols={self.protocol_names})"

    @property
    def source_hashes(self) -> dict[str, str]:
        """SHA-256 → file name of every file the import read (empty for datasets of older versions)."""
        return {f["sha256"]: f["name"] for f in self.meta.get("source_files", [])}

    @property
    def protocol_names(self) -> list[str]:
        return sorted(self.meta["protocols"])

    @property
    def images(self) -> np.ndarray:
        if self._images is None:
            self._images = np.load(self.path / "images.npy", mmap_mode="r")
        return self._images

    def protocol(self, name: str) -> _Proto:
        if name not in self.meta["protocols"]:
            raise KeyError(f"dataset {self.name!r} has no protocol {name!r}; it has {self.protocol_names}")
        if name not in self._protocols:
            labels = {int(k): v for k, v in self.meta["protocols"][name]["labels"].items()}
            self._protocols[name] = _Proto(
                labels,
                np.load(self.path / "labels" / f"{name}.npy", mmap_mode="r"),
                np.load(self.path / "counts" / f"{name}.npy"),
            )
        return self._protocols[name]

    def indices(self, split: str | None) -> np.ndarray:
        """Image indices of a split (``None`` or ``"all"``: every image)."""
        if split in (None, "all"):
            return np.arange(len(self))
        if split not in self.meta["splits"]:
            raise ValueError(f"dataset {self.name!r} has no split {split!r}; it has {sorted(self.meta['splits'])}")
        keep = set(self.meta["splits"][split])
        return np.asarray([i for i, s in enumerate(self.meta["subjects"]) if s in keep], dtype=np.int64)

    def __getstate__(self):  # memmaps are reopened in each DataLoader worker
        return {**self.__dict__, "_images": None, "_protocols": {}}


class Store:
    """All datasets under a root directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"store directory does not exist: {self.root}")
        self.datasets = {p.name: Dataset(p) for p in sorted(self.root.iterdir()) if (p / "dataset.json").is_file()}

    def __getitem__(self, name: str) -> Dataset:
        if name not in self.datasets:
            raise KeyError(f"no dataset {name!r} in {self.root}; it has {sorted(self.datasets)}")
        return self.datasets[name]

    def __iter__(self) -> Iterable[Dataset]:
        return iter(self.datasets.values())

    def __len__(self) -> int:
        return len(self.datasets)
