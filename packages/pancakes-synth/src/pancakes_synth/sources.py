"""Label sources: where the 3D structures that synthetic sets are cut from come from.

* :class:`ProceduralSource` — random 3D structures, no files needed (the default).
* :class:`TotalSegmentatorSource` — ``<root>/<subject>/segmentations/<structure>.nii.gz``.
* :class:`LabelMapSource` — any directory of multi-label 3D NIfTI maps (one structure per label).

Every source turns its structures into a :class:`StructureBank` of smooth G³ fields (see
:mod:`pancakes_synth.fields`); the generator samples 20–40 of them per set.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from pancakes_data.errors import UserError
from pancakes_data.io import atomic_write, write_text
from pancakes_eval.io import read_label_image
from pancakes_synth.__about__ import __version__
from pancakes_synth.fields import FAMILIES, GRID, HELD_OUT_FAMILIES, make_field, mask_to_field

__all__ = [
    "DEFAULT_BANK",
    "LabelMapSource",
    "ProceduralSource",
    "StructureBank",
    "TotalSegmentatorSource",
]

DEFAULT_BANK = 384  # procedural structures per bank (``;bank=N`` in a spec, ``--bank-size``)


def synth_workers() -> int:
    """``PANCAKES_SYNTH_WORKERS`` as a count of processes (unset or empty: 1).

    Raises:
        UserError: the variable is not a whole number ≥ 1.
    """
    raw = os.environ.get("PANCAKES_SYNTH_WORKERS", "").strip()
    if not raw:
        return 1
    try:
        workers = int(raw)
    except ValueError:
        workers = 0
    if workers < 1:
        raise UserError(f"PANCAKES_SYNTH_WORKERS must be a whole number >= 1, got {raw!r}")
    return workers


@dataclass
class StructureBank:
    """Structures ready to place.

    Attributes:
        fields: (N, G, G, G) float16, > 0 inside the structure.
        extents: (N, 3) physical size of each field box, normalised so the largest axis is 1.
        names: N structure names (family or file/label).
    """

    fields: torch.Tensor
    extents: torch.Tensor
    names: list[str]

    def __len__(self) -> int:
        return self.fields.shape[0]

    @property
    def support(self) -> np.ndarray:
        """(N, 3, 2) local-coordinate box (min, max per axis, z y x) where each field is > 0,
        grown by one grid cell; lets the generator look fields up only where they can be inside."""
        if getattr(self, "_support", None) is None:
            pos = (self.fields > 0).numpy()
            axis_coords = np.linspace(-1.0, 1.0, self.fields.shape[1])
            cell = 2.0 / (self.fields.shape[1] - 1)
            box = np.zeros((len(self), 3, 2))
            for a in range(3):
                other = tuple(b for b in (1, 2, 3) if b != a + 1)
                hit = pos.any(axis=other)  # (N, G)
                first = hit.argmax(axis=1)
                last = hit.shape[1] - 1 - hit[:, ::-1].argmax(axis=1)
                box[:, a, 0] = np.where(hit.any(1), axis_coords[first] - cell, 1.0)
                box[:, a, 1] = np.where(hit.any(1), axis_coords[last] + cell, -1.0)
            self._support = box
        return self._support


class ProceduralSource:
    """Random structures from procedural families (ellipsoids, blobs, shells, tubes, trees,
    blob fields, slabs); ``families=["voronoi"]`` gives the held-out family used for validation.

    Args:
        families: families to draw from (default: every training family).
        bank_size: structures generated once per process; sets draw 20–40 of them and place
            each with its own random affine, so a few hundred give endless variety.
    """

    def __init__(
        self,
        families: list[str] | None = None,
        *,
        bank_size: int = DEFAULT_BANK,
        cache_dir: str | Path | None = None,
    ) -> None:
        fams = list(families) if families else sorted(FAMILIES)
        unknown = [f for f in fams if f not in FAMILIES and f not in HELD_OUT_FAMILIES]
        if unknown:
            raise ValueError(
                f"unknown procedural families {unknown}; known: {sorted(FAMILIES) + sorted(HELD_OUT_FAMILIES)}"
            )
        if bank_size < 1:
            raise ValueError(f"bank_size must be >= 1, got {bank_size}")
        self.families = fams
        self.bank_size = bank_size
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache()

    @property
    def spec(self) -> str:
        return "procedural" if self.families == sorted(FAMILIES) else "procedural:" + ",".join(self.families)

    def _build(self, seed: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        rng = np.random.default_rng([seed, 0xBA4C])
        names = [self.families[i % len(self.families)] for i in range(self.bank_size)]
        fields = np.stack([make_field(n, rng) for n in names])
        ext = rng.uniform(0.5, 1.0, size=(self.bank_size, 3)).astype(np.float32)
        ext /= ext.max(axis=1, keepdims=True)
        return torch.from_numpy(fields), torch.from_numpy(ext), names

    def bank(self, seed: int) -> StructureBank:
        """The bank for ``seed`` (built in a few seconds, then cached under ``cache_dir``)."""
        key = json.dumps([__version__, GRID, self.families, self.bank_size, seed])
        path = self.cache_dir / f"procedural-{hashlib.sha256(key.encode()).hexdigest()[:20]}.safetensors"
        fields, ext, names = _cached_tensors(path, lambda: self._build(seed))
        return StructureBank(fields.float(), ext, names)


def default_cache() -> Path:
    """Where banks and textures are cached: ``$PANCAKES_SYNTH_CACHE``, else
    ``$XDG_CACHE_HOME/pancakes-synth``, else ``~/.cache/pancakes-synth``."""
    if os.environ.get("PANCAKES_SYNTH_CACHE"):
        return Path(os.environ["PANCAKES_SYNTH_CACHE"])
    base = Path(os.environ["XDG_CACHE_HOME"]) if os.environ.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "pancakes-synth"


def _cached_tensors(path: Path, build) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Load (fields, extents, names) from ``path`` or build and store them there.

    A corrupt cache entry is rebuilt, never trusted; an unwritable cache directory only costs
    the rebuild next time.
    """
    names_path = path.with_suffix(".json")
    if path.is_file() and names_path.is_file():
        try:
            data = load_file(str(path))
            return data["fields"], data["extents"], json.loads(names_path.read_text(encoding="utf-8"))
        except Exception:
            pass
    fields, extents, names = build()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(names_path, json.dumps(names))
        tensors = {"fields": fields.contiguous(), "extents": extents.contiguous()}
        atomic_write(path, lambda p: save_file(tensors, str(p)))
    except OSError:
        pass
    return fields, extents, names


class _CachedFileSource:
    """Shared caching of per-file fields: a second run does not re-read the NIfTI files."""

    def __init__(self, root: str | Path, *, cache_dir: str | Path | None, max_structures: int) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"label source directory does not exist: {self.root}")
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache()
        if max_structures < 1:
            raise ValueError(f"max_structures must be >= 1, got {max_structures}")
        self.max_structures = max_structures

    def _cache_path(self, item: Path, files: list[Path]) -> Path:
        key = json.dumps([str(item.resolve())] + [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files])
        return self.cache_dir / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.safetensors"

    def _cached(self, item: Path, files: list[Path], build) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        return _cached_tensors(self._cache_path(item, files), build)

    def _prebuild(self, items: list[Path], files_of, build_of) -> None:
        """Build the uncached items' fields in ``PANCAKES_SYNTH_WORKERS`` processes (default 1: off).

        Reading a package's atlases into fields takes ~40 s of one core (deepmriprep's), paid on
        every machine whose cache is empty — a lent GPU machine's first minute, with 16 cores idle.
        The children only write cache entries; the bank is then read from the cache as always.
        """
        workers = synth_workers()
        todo = [(self._cache_path(it, files_of(it)), build_of, it) for it in items]
        todo = [t for t in todo if not (t[0].is_file() and t[0].with_suffix(".json").is_file())]
        if workers <= 1 or len(todo) < 2:
            return
        # fork on Linux: the children inherit the imported modules (no second torch import); they
        # run numpy and scipy only, never CUDA or torch's thread pools, so a parent with threads
        # (torch's, a GPU's) is safe to fork, and Python ≥ 3.12's warning about forking a threaded
        # process is silenced for exactly this pool. Elsewhere (macOS, Windows) fork is not safe:
        # spawn, paying one import per child.
        method = "fork" if sys.platform.startswith("linux") else "spawn"
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", r".*use of fork\(\) may lead to deadlocks", DeprecationWarning)
            with ProcessPoolExecutor(min(workers, len(todo)), mp_context=multiprocessing.get_context(method)) as pool:
                list(pool.map(_build_into_cache, todo))

    def _collect(self, items: list[Path], seed: int, files_of, build_of) -> StructureBank:
        rng = np.random.default_rng([seed, 0x5EED])
        order = rng.permutation(len(items))
        self._prebuild(items, files_of, build_of)
        fields, extents, names = [], [], []
        total = 0
        for i in order:
            item = items[int(i)]
            f, e, n = self._cached(item, files_of(item), lambda item=item: build_of(item))
            fields.append(f)
            extents.append(e)
            names += n
            total += len(n)
            if total >= self.max_structures:
                break
        if total == 0:
            raise ValueError(f"{self.root}: no non-empty structures found")
        ext = torch.cat(extents)[: self.max_structures]
        return StructureBank(
            torch.cat(fields)[: self.max_structures].float(),
            ext / ext.max(dim=1, keepdim=True).values,
            names[: self.max_structures],
        )


def _build_into_cache(job: tuple[Path, object, Path]) -> None:
    """One item of :meth:`_CachedFileSource._prebuild`, in a child process: build and cache it."""
    path, build_of, item = job
    _cached_tensors(path, lambda: build_of(item))


def _stack(pairs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[torch.Tensor, torch.Tensor]:
    if not pairs:
        return torch.zeros((0, GRID, GRID, GRID), dtype=torch.float16), torch.zeros((0, 3))
    return torch.from_numpy(np.stack([p[0] for p in pairs])), torch.from_numpy(np.stack([p[1] for p in pairs]))


class TotalSegmentatorSource(_CachedFileSource):
    """TotalSegmentator layout (v1 and v2 names): ``<root>/<subject>/segmentations/*.nii.gz``.

    One binary mask per structure; empty masks are dropped. Masks are read lazily, subject by
    subject, cropped to their bounding box and cached as fields under ``cache_dir``
    (default ``~/.cache/pancakes-synth``; the source tree is never written to).
    """

    def __init__(self, root: str | Path, *, cache_dir: str | Path | None = None, max_structures: int = 4096) -> None:
        super().__init__(root, cache_dir=cache_dir, max_structures=max_structures)
        self.subjects = sorted(p for p in self.root.iterdir() if (p / "segmentations").is_dir())
        if not self.subjects:
            raise FileNotFoundError(f"{self.root}: no '<subject>/segmentations/' folders (TotalSegmentator layout)")

    @property
    def spec(self) -> str:
        return f"totalseg:{self.root}"

    @staticmethod
    def _files(subject: Path) -> list[Path]:
        return sorted((subject / "segmentations").glob("*.nii*"))

    def _build(self, subject: Path):
        pairs, names = [], []
        for f in self._files(subject):
            data, zooms = read_label_image(f)
            if data.ndim != 3:
                raise ValueError(f"{f}: label maps must be 3D, got shape {data.shape}")
            mask = data > 0
            if mask.any():
                pairs.append(mask_to_field(mask, zooms))
                names.append(f.name.split(".nii")[0])
        fields, extents = _stack(pairs)
        return fields, extents, names

    def bank(self, seed: int) -> StructureBank:
        if not any(self._files(s) for s in self.subjects):
            raise FileNotFoundError(f"{self.root}: segmentation folders hold no .nii/.nii.gz masks")
        return self._collect(self.subjects, seed, self._files, self._build)


class LabelMapSource(_CachedFileSource):
    """Multi-label 3D NIfTI maps; every non-zero label of every file is a structure.

    Args:
        root: a directory searched recursively for ``.nii``/``.nii.gz`` files.
        files: the label maps themselves instead (e.g. a package's atlases beside its templates);
            ``root`` is then only their common folder.
    """

    def __init__(
        self,
        root: str | Path | None = None,
        *,
        files: list[str | Path] | None = None,
        cache_dir: str | Path | None = None,
        max_structures: int = 4096,
    ) -> None:
        if files is not None:
            paths = [Path(f) for f in files]
            missing = [str(p) for p in paths if not p.is_file()]
            if missing or not paths:
                raise FileNotFoundError(f"label maps not found: {missing or 'no files given'}")
            root = Path(os.path.commonpath([str(p.parent) for p in paths]))
        if root is None:
            raise ValueError("LabelMapSource needs a root directory or files")
        super().__init__(root, cache_dir=cache_dir, max_structures=max_structures)
        if files is not None:
            self.files = sorted(paths)
        else:
            self.files = sorted(p for p in self.root.rglob("*.nii*") if p.name.endswith((".nii", ".nii.gz")))
        if not self.files:
            raise FileNotFoundError(f"{self.root}: no .nii/.nii.gz label maps")

    @property
    def spec(self) -> str:
        return f"labels:{self.root}"

    def _build(self, path: Path):
        lab, zooms = read_label_image(path)
        if lab.ndim != 3:
            raise ValueError(f"{path}: label maps must be 3D, got shape {lab.shape}")
        pairs, names = [], []
        for value in np.unique(lab):
            if value == 0:
                continue
            pairs.append(mask_to_field(lab == value, zooms))
            names.append(f"{path.name.split('.nii')[0]}:{int(value)}")
        fields, extents = _stack(pairs)
        return fields, extents, names

    def bank(self, seed: int) -> StructureBank:
        return self._collect(self.files, seed, lambda p: [p], self._build)
