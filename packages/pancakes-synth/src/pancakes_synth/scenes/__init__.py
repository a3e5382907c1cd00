"""Scene families for pancakes-synth: populations of similar objects, thin and curvilinear
structures, layered anatomy, each rendered by an imaging-family appearance model."""

from __future__ import annotations

from pancakes_synth.scenes.appearance import APPEARANCES, GREY_WEIGHTS, Appearance
from pancakes_synth.scenes.generator import FAMILIES, GROUPS, SceneConfig, SceneGenerator
from pancakes_synth.scenes.layout import Family, Layout
from pancakes_synth.scenes.textures import TextureBank

__all__ = [
    "APPEARANCES",
    "FAMILIES",
    "GREY_WEIGHTS",
    "GROUPS",
    "Appearance",
    "Family",
    "Layout",
    "SceneConfig",
    "SceneGenerator",
    "TextureBank",
]
