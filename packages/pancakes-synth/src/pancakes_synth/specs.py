"""Source specs — the one parser: one string names any source, for the CLIs and training configs.

    procedural[:FAM,FAM]        Anatomix-style sets from procedural 3D structures
    totalseg:DIR | labels:DIR   Anatomix-style sets from TotalSegmentator trees / multi-label NIfTI maps
    scenes[:FAM|GROUP,...]      scene families (populations, curvilinear, layered; see scenes/)
    heldout:FAMILY              development-only families (spots, mosaic, nuclei; never a training source)
    shards:DIR                  sets written by ``pancakes-synth generate``

Options follow after semicolons: ``;appearance=NAME`` (scenes: force one imaging model),
``;textures=skimage`` (scenes: real textures, needs scikit-image's sample images),
``;twins=P`` (scenes: classes that differ from another by texture only, chance P per class),
``;bank=N`` (procedural: structures per bank). Every source opened here offers ``len(source)``
and ``source.get(i)`` → :class:`~pancakes_synth.SynthSet`; the generators follow
:class:`~pancakes_synth.recipe.Generator`.

Other packages add kinds of their own without a second parser: ``open_source(spec, kinds={...})``
(pancakes-model's training adds ``store:`` and ``atlases:``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pancakes_synth.anatomix import SetGenerator
from pancakes_synth.heldout import HeldOutGenerator
from pancakes_synth.scenes import SceneConfig, SceneGenerator, TextureBank
from pancakes_synth.shardset import ShardDataset
from pancakes_synth.sources import DEFAULT_BANK, LabelMapSource, ProceduralSource, TotalSegmentatorSource

__all__ = ["OPTIONS", "Opening", "Spec", "open_source", "parse_source", "parse_spec"]

OPTIONS = {"appearance", "textures", "bank", "twins"}


@dataclass(frozen=True)
class Spec:
    """A parsed source spec: ``kind:arg;key=value;…``."""

    kind: str
    arg: str = ""
    options: dict[str, str] = field(default_factory=dict)

    @property
    def head(self) -> str:
        """``kind:arg`` without the options (what names the source's data)."""
        return f"{self.kind}:{self.arg}" if self.arg else self.kind


@dataclass(frozen=True)
class Opening:
    """What opening a source may use besides its spec."""

    set_size: int = 5
    seed: int = 0
    cache_dir: str | Path | None = None
    bank_size: int = DEFAULT_BANK


Opener = Callable[[Spec, Opening], Any]


def parse_spec(spec: str) -> Spec:
    """``"scenes:nuclei;textures=skimage"`` → ``Spec("scenes", "nuclei", {"textures": "skimage"})``.

    Raises:
        ValueError: an option that is not ``key=value`` or not one of :data:`OPTIONS`.
    """
    head, *opts = str(spec).split(";")
    kind, _, arg = head.partition(":")
    options: dict[str, str] = {}
    for opt in opts:
        key, sep, value = opt.partition("=")
        if not sep or key not in OPTIONS:
            raise ValueError(f"source {spec!r}: bad option {opt!r}; options are {sorted(OPTIONS)} as key=value")
        options[key] = value
    return Spec(kind.strip(), arg.strip(), options)


def _only(spec: Spec, allowed: set[str]) -> None:
    unknown = sorted(set(spec.options) - allowed)
    if unknown:
        raise ValueError(f"source {spec.head!r}: options {unknown} do not apply to {spec.kind} sources")


def parse_source(spec: str, *, cache_dir: str | Path | None = None, bank_size: int = DEFAULT_BANK):
    """``procedural`` | ``procedural:fam1,fam2`` | ``totalseg:DIR`` | ``labels:DIR`` → a label source."""
    parsed = parse_spec(spec)
    bank = int(parsed.options.get("bank", bank_size))
    if parsed.kind == "procedural":
        return ProceduralSource([f for f in parsed.arg.split(",") if f] or None, cache_dir=cache_dir, bank_size=bank)
    if parsed.kind == "totalseg" and parsed.arg:
        return TotalSegmentatorSource(parsed.arg, cache_dir=cache_dir)
    if parsed.kind == "labels" and parsed.arg:
        return LabelMapSource(parsed.arg, cache_dir=cache_dir)
    raise ValueError(f"unknown source {spec!r}; use procedural, procedural:FAMILIES, totalseg:DIR or labels:DIR")


def _anatomix(spec: Spec, how: Opening) -> SetGenerator:
    _only(spec, {"bank"})
    source = parse_source(spec.head, cache_dir=how.cache_dir, bank_size=int(spec.options.get("bank", how.bank_size)))
    return SetGenerator(source, set_size=how.set_size, seed=how.seed)


def _scenes(spec: Spec, how: Opening) -> SceneGenerator:
    _only(spec, {"appearance", "textures", "twins"})
    textures = spec.options.get("textures", "procedural")
    if textures not in ("procedural", "skimage"):
        raise ValueError(f"source {spec.head!r}: textures must be procedural or skimage, got {textures!r}")
    twins = spec.options.get("twins", "0")
    try:
        p_twins = float(twins)
    except ValueError:
        p_twins = -1.0
    if not 0.0 <= p_twins <= 1.0:
        raise ValueError(f"source {spec.head!r}: twins must be a probability in [0, 1], got {twins!r}")
    bank = TextureBank.from_skimage(cache_dir=how.cache_dir) if textures == "skimage" else None
    families = [f for f in spec.arg.split(",") if f] or None
    return SceneGenerator(
        families,
        appearance=spec.options.get("appearance"),
        textures=bank,
        set_size=how.set_size,
        seed=how.seed,
        config=SceneConfig(p_twins=p_twins),
    )


def _heldout(spec: Spec, how: Opening) -> HeldOutGenerator:
    _only(spec, set())
    return HeldOutGenerator(spec.arg, set_size=how.set_size, seed=how.seed)


def _shards(spec: Spec, how: Opening) -> ShardDataset:
    _only(spec, set())
    if not spec.arg:
        raise ValueError("source 'shards' needs a folder: shards:DIR")
    return ShardDataset(spec.arg)


KINDS: dict[str, Opener] = {
    "procedural": _anatomix,
    "totalseg": _anatomix,
    "labels": _anatomix,
    "scenes": _scenes,
    "heldout": _heldout,
    "shards": _shards,
}


def open_source(
    spec: str,
    *,
    set_size: int = 5,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    bank_size: int = DEFAULT_BANK,
    kinds: Mapping[str, Opener] | None = None,
) -> Any:
    """Open the source ``spec`` (see module docstring) as a set source.

    Args:
        kinds: further spec kinds → their openers (another package's sources).

    Raises:
        ValueError: an unknown kind, family or option.
        FileNotFoundError: a directory that does not exist or holds no data.
    """
    parsed = parse_spec(spec)
    openers = {**KINDS, **(kinds or {})}
    if parsed.kind not in openers:
        known = ", ".join(sorted(openers))
        raise ValueError(f"unknown source {spec!r}; the kinds are {known} (see pancakes_synth.specs)")
    return openers[parsed.kind](parsed, Opening(set_size, seed, cache_dir, bank_size))
