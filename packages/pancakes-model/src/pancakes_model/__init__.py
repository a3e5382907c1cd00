"""pancakes-model: the Pancakes network, its loss and its weights.

Given a set of images, predict M candidate segmentation protocols of up to K labels each, with
every label meaning the same structure across the set.
"""

from __future__ import annotations

from pancakes_model.__about__ import __version__
from pancakes_model.inference.predict import segment
from pancakes_model.loss import (
    LossResult,
    candidate_dice_losses,
    joint_set_dice_loss,
    set_dice_loss,
    set_soft_dice_loss,
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
)
from pancakes_model.network.weights import read_metadata

__all__ = [
    "LogitFactors",
    "LossResult",
    "Pancakes",
    "PancakesConfig",
    "ProtocolEmbedding",
    "Sampler",
    "UNet",
    "__version__",
    "candidate_dice_losses",
    "joint_set_dice_loss",
    "pancakes",
    "read_metadata",
    "segment",
    "set_dice_loss",
    "set_soft_dice_loss",
    "winner_only_set_dice_loss",
]
