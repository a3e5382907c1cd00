"""pancakes-synth: Anatomix-style synthetic image sets from 3D label maps."""

from __future__ import annotations

from pancakes_synth.__about__ import __version__
from pancakes_synth.anatomix import ElementParams, GeneratorConfig, SetGenerator, SynthSet, TemplateParams
from pancakes_synth.heldout import HELD_OUT, HeldOutGenerator
from pancakes_synth.recipe import Generator
from pancakes_synth.scenes import SceneGenerator
from pancakes_synth.shards import generate_dataset
from pancakes_synth.shardset import ShardDataset, SynthStream
from pancakes_synth.sources import LabelMapSource, ProceduralSource, StructureBank, TotalSegmentatorSource
from pancakes_synth.specs import open_source, parse_source, parse_spec

__all__ = [
    "HELD_OUT",
    "ElementParams",
    "Generator",
    "GeneratorConfig",
    "HeldOutGenerator",
    "LabelMapSource",
    "ProceduralSource",
    "SceneGenerator",
    "SetGenerator",
    "ShardDataset",
    "StructureBank",
    "SynthSet",
    "SynthStream",
    "TemplateParams",
    "TotalSegmentatorSource",
    "__version__",
    "generate_dataset",
    "open_source",
    "parse_source",
    "parse_spec",
]
