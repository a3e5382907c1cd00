"""Source specs: one string names any synthetic source, for the CLI and training configs.

    procedural[:FAM,FAM]        Anatomix-style sets from procedural 3D structures
    totalseg:DIR | labels:DIR   Anatomix-style sets from TotalSegmentator trees / multi-label NIfTI maps
    scenes[:FAM|GROUP,...]      scene families (populations, curvilinear, layered; see scenes/)
    heldout:spots | heldout:mosaic
                                development-only families (never a training source)
    shards:DIR                  sets written by ``pancakes-synth generate``

Options follow after semicolons: ``;appearance=NAME`` (scenes: force one imaging model),
``;textures=skimage`` (scenes: real textures, needs scikit-image's sample images),
``;bank=N`` (procedural: structures per bank). Every source opened here offers ``len(source)``
and ``source.get(i)`` → :class:`~pancakes_synth.SynthSet`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["open_source", "split_spec"]

_OPTIONS = {"appearance", "textures", "bank"}


def split_spec(spec: str) -> tuple[str, str, dict[str, str]]:
    """``"scenes:nuclei;textures=skimage"`` → ``("scenes", "nuclei", {"textures": "skimage"})``."""
    head, *opts = spec.split(";")
    kind, _, arg = head.partition(":")
    options: dict[str, str] = {}
    for opt in opts:
        key, sep, value = opt.partition("=")
        if not sep or key not in _OPTIONS:
            raise ValueError(f"source {spec!r}: bad option {opt!r}; options are {sorted(_OPTIONS)} as key=value")
        options[key] = value
    return kind.strip(), arg.strip(), options


def open_source(spec: str, *, set_size: int = 5, seed: int = 0, cache_dir: str | Path | None = None) -> Any:
    """Open the synthetic source ``spec`` (see module docstring) as a set source.

    Raises:
        ValueError: an unknown kind, family or option.
        FileNotFoundError: a directory that does not exist or holds no data.
    """
    kind, arg, opts = split_spec(spec)
    if kind in ("procedural", "totalseg", "labels"):
        from pancakes_synth.generator import SetGenerator
        from pancakes_synth.sources import parse_source

        unknown = sorted(set(opts) - {"bank"})
        if unknown:
            raise ValueError(f"source {spec!r}: options {unknown} apply to scenes only")
        head = spec.split(";")[0]
        source = parse_source(head, cache_dir=cache_dir, bank_size=int(opts.get("bank", 384)))
        return SetGenerator(source, set_size=set_size, seed=seed)
    if kind == "scenes":
        from pancakes_synth.scenes import SceneGenerator, TextureBank

        textures = opts.get("textures", "procedural")
        if textures not in ("procedural", "skimage"):
            raise ValueError(f"source {spec!r}: textures must be procedural or skimage, got {textures!r}")
        bank = TextureBank.from_skimage(cache_dir=cache_dir) if textures == "skimage" else None
        families = [f for f in arg.split(",") if f] or None
        return SceneGenerator(families, appearance=opts.get("appearance"), textures=bank, set_size=set_size, seed=seed)
    if kind == "heldout":
        from pancakes_synth.heldout import HeldOutGenerator

        return HeldOutGenerator(arg, set_size=set_size, seed=seed)
    if kind == "shards" and arg:
        from pancakes_synth.shards import ShardDataset

        return ShardDataset(arg)
    raise ValueError(
        f"unknown source {spec!r}; use procedural, totalseg:DIR, labels:DIR, scenes[:FAMILIES], "
        "heldout:FAMILY or shards:DIR"
    )
