"""pancakes-model: the Pancakes network, its loss and its weights.

Given a set of images, predict M candidate segmentation protocols of up to K labels each, with
every label meaning the same structure across the set.
"""

from __future__ import annotations

from pancakes_model.__about__ import __version__
from pancakes_model.inference.matching import MatchResult, match
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


def segment_collection(inputs, out, *, client=None, **options):
    """Segment files or folders (one set) into ``out`` — ``pancakes segment`` as a function.

    Args:
        inputs: image files, folders, DICOM folders.
        out: the output folder (see the README's output layout).
        client: a ``distributed.Client`` to run every input as a task on its cluster (for people who
            already have one: dask-jobqueue, Kubernetes, …); None runs in this process.
        options: the keyword arguments of :func:`pancakes_model.app.segment.run_segment`
            (``M``, ``K``, ``model_path``, ``axis``, ``force``, ``resume``, ``protocols``, …).

    Returns:
        run.json's content.
    """
    from pancakes_model.app.segment import run_segment

    return run_segment(inputs, out, client=client, **options)


__all__ = [
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
    "winner_only_set_dice_loss",
]
