"""pancakes-model: the Pancakes network, its loss and its weights.

Given a set of images, predict M candidate segmentation protocols of up to K labels each, with
every label meaning the same structure across the set.
"""

from __future__ import annotations

from pancakes_model.__about__ import __version__
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


def segment(images, M: int = 8, K: int = 20, *, model: Pancakes | None = None):
    """Segment in-memory 2D images (one set) into M consistent protocols of up to K labels.

    Args:
        images: grey 2D arrays (H_i, W_i), any sizes and intensity ranges.
        M: number of protocols. K: labels per protocol.
        model: a loaded model (default: the shipped weights).

    Returns:
        One int64 array (M, H_i, W_i) per image, at that image's size.
    """
    # Imported here: the image I/O and preprocessing stack is not needed by the network core.
    from pancakes_model.app.segment import segment as _segment

    return _segment(images, M, K, model=model)


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
