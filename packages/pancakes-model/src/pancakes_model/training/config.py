"""One configuration tree for training: typed dataclasses whose defaults are the only defaults.

A TOML file (``configs/*.toml``) and ``--set section.key=value`` overrides are applied on top with
:func:`dataclasses.replace`; an unknown key, a wrong type or an impossible value is a
``ValueError`` naming it. Training data is a list of weighted sources, one schema for all:

    [[data.sources]]
    spec = "store:brain-deepmriprep"     # a dataset of the local store (``nox -s data``)
    weight = 1.0
    [[data.sources]]
    spec = "scenes:populations;textures=skimage"   # any pancakes-synth spec, shards:DIR included
    weight = 2.0
    target_mix = { structure = 0.6, foreground = 0.4 }   # optional: this source's own target kinds

A config may start from another: ``extends = "stage17-cpu.toml"`` (a path relative to the file)
reads that one first and lays this one over it — tables merge key by key, anything else (numbers,
lists, the list of ``[[data.sources]]``) is replaced whole — so a stage's file says only how it
differs from the stage before. To change the weights of some sources without restating the list,
name them by spec in a table (applied after the chain and the overrides, then folded into
``data.sources``, so a saved config holds the weights once):

    [data.source_weights]
    "store:brain-deepmriprep" = 4.5

A training source may never name or read a development family (``configs/dev.toml``): the check
runs when the trainer opens the sources (:func:`~pancakes_model.training.data.training_sources`),
and a test runs it over every config in the repository.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from pancakes_data import TargetMix, UserError
from pancakes_model.network.config import PancakesConfig

__all__ = [
    "ConfigError",
    "ConfigNotFound",
    "DataConfig",
    "OutConfig",
    "SourceEntry",
    "TrainConfig",
    "TrainSection",
    "ValConfig",
    "load_config",
    "parse_value",
    "toml",
]


class ConfigError(UserError):
    """A training or dev configuration that cannot be used (the key and value are named)."""


class ConfigNotFound(ConfigError, FileNotFoundError):
    """A configuration file (or a file it names) that does not exist."""


# pancakes_data.set_augment.INTENSITY_FLIPS, repeated so that loading a config imports no torch
INTENSITY_FLIPS = ("image", "set")


def toml():
    """tomllib (Python ≥ 3.11) or its backport."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    return tomllib


@dataclass(frozen=True)
class SourceEntry:
    """One training source: ``spec`` (``store:NAME`` or a pancakes-synth spec), its weight and,
    optionally, its own ``target_mix`` (e.g. ``small`` targets from the atlas sources only; empty:
    ``data.target_mix``) and its own ``intensity_flip`` (empty: ``data.intensity_flip``)."""

    spec: str
    weight: float = 1.0
    target_mix: dict[str, float] = field(default_factory=dict)
    intensity_flip: str = ""


@dataclass(frozen=True)
class TrainSection:
    """Optimisation and the per-step draws (M, K, S ranges are the paper's)."""

    steps: int = 20000
    batch_size: int = 4
    lr: float = 5e-4
    weight_decay: float = 1e-4
    # the set-context branch's learning rate as a multiple of lr (its own optimizer group when ≠ 1):
    # grown zero-initialised, it moved little at lr 1e-4 in stage 16 (mean |w| 0.003 after 6,000 steps)
    context_lr_scale: float = 1.0
    warmup: int = 300
    min_lr_ratio: float = 0.05
    decay_start: int = 0  # the cosine decay's first step (0 = after the warm-up): lr holds until then
    clip: float = 1.0
    # a moving average of the weights written as OUT/ema.safetensors (0 = none; d weighs the last
    # ~1 / (1 − d) steps): the soups of earlier stages, kept continuously (:mod:`.ema`)
    ema: float = 0.0
    M: tuple[int, int] = (5, 15)
    K: tuple[int, int] = (5, 40)
    S: tuple[int, int] = (2, 5)
    targets: int = 1  # 2 = appendix-D "complete protocol" variant
    joint_weight: float = 1.0  # targets = 2: the joint loss's share, the rest winner-only (1: appendix D)
    curriculum: tuple[tuple[float, int], ...] = ((0.6, 64), (1.0, 128))  # (fraction of steps, size)
    seed: int = 0
    init: str = ""  # start from these weights ("default" = the shipped model; "" = random)
    device: str = "auto"  # cuda when available
    workers: int = 2  # data-loader processes
    threads: int = 0  # torch threads of the training process (0 = torch's default)
    # featurizer arithmetic: "auto" = bfloat16 on CPUs with native bf16 (AVX512-BF16/AMX), where it
    # halves the step, float32 elsewhere (on AVX2 bf16 convolutions are ~15× slower); "bf16", "fp32"
    precision: str = "auto"
    compile: bool = False  # torch.compile the featurizer and query head (~1 min once; pays back in a sitting)
    max_minutes: float = 0.0  # 0 = no limit
    log_every: int = 25
    checkpoint_every: int = 250
    # also a checkpoint once this many minutes passed since the last one (0 = steps only): a run cut
    # off from outside (a lent GPU machine's time limit) loses at most this much
    checkpoint_minutes: float = 0.0
    keep_checkpoints: int = 2  # newest checkpoint folders kept
    # "folders": checkpoints/step-N/ (three files each); "flat": one OUT/checkpoint.safetensors, replaced
    checkpoint_layout: str = "folders"


@dataclass(frozen=True)
class DataConfig:
    """Where training sets come from."""

    store: str = "data/store"
    sources: tuple[SourceEntry, ...] = (
        SourceEntry("store:brain-deepmriprep", 0.25),
        SourceEntry("store:brain-nilearn", 0.25),
        SourceEntry("procedural", 0.5),
    )
    target_mix: dict[str, float] = field(
        default_factory=lambda: {
            "structure": 0.5,
            "class": 0.15,
            "neighbours": 0.1,
            "foreground": 0.2,
            "background": 0.05,
        }
    )
    augment: bool = True
    # where the augmentations invert intensities: "image" (each image of a set on its own, the
    # paper's Table 3) or "set" (whole sets: a set keeps one polarity, as a user's images do)
    intensity_flip: str = "image"
    # "workers": the DataLoader workers augment; "device": they only draw the parameters and the
    # training device applies them to the whole batch (GPU runs: keeps the workers ahead)
    augment_on: str = "workers"
    cache_dir: str = ""  # synth caches (default ~/.cache/pancakes-synth)
    # spec → weight for entries of ``sources`` (every entry with that spec); empty once loaded
    source_weights: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ValConfig:
    """Validation during training: a few sets of every development family (``dev``)."""

    dev: str = "configs/dev.toml"
    every: int = 500
    sets: int = 24
    M: int = 8
    K: int = 20
    S: int = 3


@dataclass(frozen=True)
class OutConfig:
    dir: str = "runs/default"


@dataclass(frozen=True)
class TrainConfig:
    """The whole training configuration; ``model`` is the architecture of a model trained from scratch
    (with ``train.init`` the weights bring theirs; only a non-empty ``model.label_caps`` applies, and a
    non-zero ``model.set_context`` grows that branch on weights without one,
    ``model.context_per_image`` its per-image inputs, and a ``model.features`` above the weights'
    widens their UNet, seeded by ``train.seed``)."""

    model: PancakesConfig = field(default_factory=PancakesConfig)
    train: TrainSection = field(default_factory=TrainSection)
    data: DataConfig = field(default_factory=DataConfig)
    val: ValConfig = field(default_factory=ValConfig)
    out: OutConfig = field(default_factory=OutConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def parse_value(text: str) -> Any:
    """A ``--set`` value: TOML (numbers, lists, quoted strings) or a bare string."""
    tomllib = toml()
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # bare strings need no quotes on the command line


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """TOML value → the dataclass field's type, or ValueError naming the key."""
    origin = getattr(hint, "__origin__", None)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    if origin is tuple:
        args = hint.__args__
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{where} must have {len(args)} entries, got {value!r}")
        return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a table, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a table, got {value!r}")
        hints = get_type_hints(hint)
        unknown = sorted(set(value) - set(hints))
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(hints)}")
        try:
            return hint(**{k: _coerce(v, hints[k], f"{where}.{k}") for k, v in value.items()})
        except TypeError as exc:  # a required field is missing
            raise ConfigError(f"{where}: {exc}") from exc
    return value


def _build(base: Any, data: dict[str, Any], where: str) -> Any:
    hints = get_type_hints(type(base))
    known = {f.name for f in dataclasses.fields(base)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {[f'{where}.{k}'.lstrip('.') for k in unknown]}; known: {sorted(known)}"
        )
    changes = {}
    for key, value in data.items():
        name = f"{where}.{key}".lstrip(".")
        current = getattr(base, key)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            changes[key] = _build(current, value, name)
        else:
            changes[key] = _coerce(value, hints[key], name)
    try:
        return dataclasses.replace(base, **changes)
    except (TypeError, ValueError) as exc:  # a value the section's own checks refuse (model config)
        raise ConfigError(f"{where or 'config'}: {exc}") from exc


def _override(cfg: TrainConfig, item: str) -> TrainConfig:
    key, sep, value = item.partition("=")
    if not sep or "." not in key:
        raise ConfigError(f"override {item!r} must look like section.key=value")
    section, name = key.strip().split(".", 1)
    return _build(cfg, {section: {name: parse_value(value.strip())}}, "")


def _check(cfg: TrainConfig) -> TrainConfig:
    t = cfg.train
    for key in ("M", "K", "S"):
        lo, hi = getattr(t, key)
        if not 1 <= lo <= hi:
            raise ConfigError(f"train.{key} must be a range [lo, hi] with 1 <= lo <= hi, got {list(getattr(t, key))}")
    if t.steps < 1 or t.batch_size < 1:
        raise ConfigError(f"train.steps and train.batch_size must be >= 1, got {t.steps}, {t.batch_size}")
    if t.lr <= 0 or t.warmup < 0 or not 0 <= t.min_lr_ratio <= 1:
        raise ConfigError(
            f"train.lr must be > 0, warmup >= 0, min_lr_ratio in [0, 1]; got {t.lr}, {t.warmup}, {t.min_lr_ratio}"
        )
    if not 0 <= t.decay_start < t.steps:
        raise ConfigError(f"train.decay_start must be in [0, train.steps), got {t.decay_start} (steps {t.steps})")
    if not 0 <= t.ema < 1:
        raise ConfigError(f"train.ema must be in [0, 1) (0 = no moving average), got {t.ema}")
    if not 0 < t.context_lr_scale <= 1000:
        raise ConfigError(f"train.context_lr_scale must be in (0, 1000], got {t.context_lr_scale}")
    if t.targets not in (1, 2) or not 0 <= t.joint_weight <= 1:
        raise ConfigError(f"train.targets must be 1 or 2, joint_weight in [0, 1]; got {t.targets}, {t.joint_weight}")
    if t.workers < 0 or t.threads < 0:
        raise ConfigError(f"train.workers and train.threads must be >= 0, got {t.workers}, {t.threads}")
    for frac, size in t.curriculum:
        if not 0 < frac <= 1 or size < 16 or size % 16:
            raise ConfigError(
                f"train.curriculum entries are [fraction in (0, 1], size a multiple of 16], got {[frac, size]}"
            )
    if t.checkpoint_every < 1 or t.checkpoint_minutes < 0 or t.keep_checkpoints < 1:
        raise ConfigError(
            "train.checkpoint_every and train.keep_checkpoints must be >= 1 and train.checkpoint_minutes >= 0; "
            f"got {t.checkpoint_every}, {t.keep_checkpoints}, {t.checkpoint_minutes}"
        )
    if t.checkpoint_layout not in ("folders", "flat"):
        raise ConfigError(f"train.checkpoint_layout must be 'folders' or 'flat', got {t.checkpoint_layout!r}")
    if t.precision not in ("auto", "bf16", "fp32"):
        raise ConfigError(f"train.precision must be 'auto', 'bf16' or 'fp32', got {t.precision!r}")
    if cfg.data.intensity_flip not in INTENSITY_FLIPS:
        raise ConfigError(f"data.intensity_flip must be 'image' or 'set', got {cfg.data.intensity_flip!r}")
    if cfg.data.augment_on not in ("workers", "device"):
        raise ConfigError(f"data.augment_on must be 'workers' or 'device', got {cfg.data.augment_on!r}")
    if not cfg.data.sources:
        raise ConfigError("data.sources is empty: give at least one [[data.sources]] entry")
    for s in cfg.data.sources:
        if not s.spec or s.weight < 0:
            raise ConfigError(f"data.sources: each entry needs a spec and a weight >= 0, got {s}")
        if s.intensity_flip and s.intensity_flip not in INTENSITY_FLIPS:
            raise ConfigError(
                f"data.sources ({s.spec}): intensity_flip must be 'image', 'set' or empty, got {s.intensity_flip!r}"
            )
    if sum(s.weight for s in cfg.data.sources) <= 0:
        raise ConfigError("data.sources: the weights must have a positive sum")
    mixes = [("data.target_mix", cfg.data.target_mix)]
    mixes += [(f"data.sources[{i}].target_mix", s.target_mix) for i, s in enumerate(cfg.data.sources) if s.target_mix]
    for where, mix in mixes:
        try:
            TargetMix.from_dict(mix)  # validates kinds and weights
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    return cfg


def _layered(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` laid over ``base``: tables merge key by key, any other value replaces."""
    out = dict(base)
    for key, value in top.items():
        out[key] = _layered(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def read_toml(path: Path, *, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A config file's content with its ``extends`` chain resolved (module docstring)."""
    tomllib = toml()
    if not path.is_file():
        if _chain:
            raise ConfigError(f"{_chain[-1]}: extends {path}, which is not a file")
        raise ConfigNotFound(f"config file not found: {path}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc})") from exc
    if "extends" not in data:
        return data
    parent = data.pop("extends")
    if not isinstance(parent, str) or not parent:
        raise ConfigError(f"{path}: extends must be the path of another config file, got {parent!r}")
    chain, base_path = (*_chain, path.resolve()), (path.parent / parent).resolve()
    if base_path in chain:
        raise ConfigError(f"{path}: extends {parent!r} leads back to itself")
    return _layered(read_toml(base_path, _chain=chain), data)


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Defaults ← TOML file (its ``extends`` chain first) ← ``section.key=value`` overrides;
    validated (see module docstring)."""
    cfg = TrainConfig()
    if path is not None:
        cfg = _build(cfg, read_toml(Path(path)), "")
    for item in overrides:
        cfg = _override(cfg, item)
    return _check(_reweighted(cfg))


def _reweighted(cfg: TrainConfig) -> TrainConfig:
    """``data.source_weights`` folded into ``data.sources`` (module docstring)."""
    weights = cfg.data.source_weights
    if not weights:
        return cfg
    specs = [s.spec for s in cfg.data.sources]
    unknown = sorted(set(weights) - set(specs))
    if unknown:
        raise ConfigError(f"data.source_weights names no entry of data.sources: {unknown}; the sources: {specs}")
    for spec, weight in weights.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
            raise ConfigError(f"data.source_weights[{spec!r}] must be a number >= 0, got {weight!r}")
    sources = tuple(dataclasses.replace(s, weight=float(weights.get(s.spec, s.weight))) for s in cfg.data.sources)
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, sources=sources, source_weights={}))
