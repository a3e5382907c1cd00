"""pancakes-model: the Pancakes network, its loss and its weights.

Given a set of images, predict M candidate segmentation protocols of up to K labels each, with
every label meaning the same structure across the set.

The public names load lazily (PEP 562): ``import pancakes_model`` costs nothing, so
``pancakes --version`` and every ``--help`` answer without importing torch; the first use of a
name such as :class:`Pancakes` imports its module. This and the torch-free command-line parser
(:mod:`pancakes_model.parser`) are the two places where the project imports later than the top
of a file.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pancakes_model.__about__ import __version__

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load on first use
    from pancakes_model.app.segment import run_segment as segment_collection
    from pancakes_model.inference.matching import MatchResult, match
    from pancakes_model.inference.predict import segment
    from pancakes_model.loss import (
        LossResult,
        candidate_dice_losses,
        joint_set_dice_loss,
        set_dice_loss,
        set_soft_dice_loss,
        winner_only_joint_set_dice_loss,
        winner_only_set_dice_loss,
    )
    from pancakes_model.network import (
        LogitFactors,
        Pancakes,
        PancakesConfig,
        ProtocolEmbedding,
        Sampler,
        UNet,
        pancakes,
        read_metadata,
    )

# public name → (module, attribute)
_LAZY = {
    "MatchResult": ("pancakes_model.inference.matching", "MatchResult"),
    "match": ("pancakes_model.inference.matching", "match"),
    "segment": ("pancakes_model.inference.predict", "segment"),
    "segment_collection": ("pancakes_model.app.segment", "run_segment"),
    **{
        name: ("pancakes_model.loss", name)
        for name in (
            "LossResult",
            "candidate_dice_losses",
            "joint_set_dice_loss",
            "set_dice_loss",
            "set_soft_dice_loss",
            "winner_only_joint_set_dice_loss",
            "winner_only_set_dice_loss",
        )
    },
    **{
        name: ("pancakes_model.network", name)
        for name in (
            "LogitFactors",
            "Pancakes",
            "PancakesConfig",
            "ProtocolEmbedding",
            "Sampler",
            "UNet",
            "pancakes",
            "read_metadata",
        )
    },
}

__all__ = [  # the names of _LAZY and the version (a test checks they agree)
    "LogitFactors",
    "LossResult",
    "MatchResult",
    "Pancakes",
    "PancakesConfig",
    "ProtocolEmbedding",
    "Sampler",
    "UNet",
    "__version__",
    "candidate_dice_losses",
    "joint_set_dice_loss",
    "match",
    "pancakes",
    "read_metadata",
    "segment",
    "segment_collection",
    "set_dice_loss",
    "set_soft_dice_loss",
    "winner_only_joint_set_dice_loss",
    "winner_only_set_dice_loss",
]


def __getattr__(name: str) -> Any:
    """Load a public name on first use (see the module docstring)."""
    if name not in _LAZY:
        raise AttributeError(f"module 'pancakes_model' has no attribute {name!r}")
    module, attr = _LAZY[name]
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
