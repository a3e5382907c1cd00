"""``pancakes match``: one annotated example picks the structure, applied to the whole collection.

    pancakes match INPUT... --example IMAGE --mask MASK --out OUT [-M 8] [-K 20] [--multi-label]
                   [--force | --resume] [--dask ADDRESS]

Two steps: the examples are segmented and every candidate is ranked against their masks
(:func:`pancakes_model.inference.matching.rank_candidates`); then the collection goes through the
``segment`` pipeline (:func:`pancakes_model.app.segment.run_segment`) with that choice attached —
the same per-input loop, writer, report, ``--resume``, ``--dask`` and memory bound. OUT holds the
chosen protocol's label maps, ``masks/`` (the matched structure of every input, in the input's
own format and grid: 0/1, or the mask's values with ``--multi-label``), ``match.json`` (the
ranking, the choice, model SHA-256, M, K), ``stats.csv``, ``overview.png``, ``report.html`` and
``run.json`` (written last). ``pancakes segment … --match OUT/match.json`` applies the same choice
to new images later.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from pancakes_data.io import MAX_PIXELS, collect_inputs, read_image, read_labels
from pancakes_model.app.common import AXES, InputError, check_device, check_mk_limits
from pancakes_model.app.execution import set_context
from pancakes_model.app.segment import run_segment
from pancakes_model.app.work import Job, check_item, segment_one
from pancakes_model.inference.matching import WARN_BELOW, MatchResult, rank_candidates
from pancakes_model.network import Pancakes, resolve, sha256
from pancakes_model.network.weights import WeightsError

__all__ = ["rank_examples", "read_mask", "run_match"]


def read_mask(path: str | Path, *, multi_label: bool, shape: tuple[int, ...]) -> np.ndarray:
    """An annotation mask as integers, checked against its example's shape and the binary rule."""
    data = read_labels(path).data  # refuses non-integer values, naming the file
    if data.shape != shape:
        raise InputError(f"--mask {path} has shape {data.shape}, its example {shape}; they must match")
    mask = data.astype(np.int64)
    nonzero = [int(v) for v in np.unique(mask) if v != 0]
    if not nonzero:
        raise InputError(f"--mask {path} is empty: draw the structure to find")
    if not multi_label:
        if len(nonzero) > 1:
            raise InputError(
                f"--mask {path} holds the values {nonzero[:6]}: a binary mask holds 0 and one value; "
                "pass --multi-label for several structures"
            )
        mask = (mask != 0).astype(np.int64)
    return mask


def rank_examples(
    model: Pancakes, examples: Sequence[str | Path], masks: Sequence[str | Path], *, M: int, K: int,
    multi_label: bool, axis: str = "axial", device: str = "cpu", max_pixels: int = MAX_PIXELS, channel=None,
    context: Sequence[float] | None = None,
) -> MatchResult:  # fmt: skip
    """Segment the annotated examples and choose the candidate that matches their masks.

    ``context``: the set's summary for a model with a set-context branch (the examples are then
    segmented as members of that set, as the collection will be); None: each example on its own."""
    if not examples or len(examples) != len(masks):
        raise InputError(f"give as many --mask as --example (got {len(examples)} and {len(masks)})")
    job = Job(
        M=M, K=K, keep=tuple(range(M)), axis=AXES[axis], device=device, batch=4, partial=Path(),
        context=None if context is None else tuple(context),
    )  # fmt: skip
    labels, targets = [], []
    for example, mask in zip(examples, masks):
        item = read_image(example, max_pixels=max_pixels, channel=channel)
        check_item(item)
        targets.append(read_mask(mask, multi_label=multi_label, shape=item.data.shape))
        labels.append(segment_one(job, model, item)[0])
    protocol, assignment, score, ranking = rank_candidates(labels, targets, K=K)
    result = MatchResult(protocol, assignment, score, ranking)
    if score < WARN_BELOW:
        result.warning = f"no candidate matches your example well (best Dice {score:.2f}); try larger M or K"
    return result


def run_match(
    inputs: Sequence[str | Path],
    out: str | Path,
    *,
    examples: Sequence[str | Path],
    masks: Sequence[str | Path],
    M: int = 8,
    K: int = 20,
    model_path: str | Path = "default",
    multi_label: bool = False,
    axis: str = "axial",
    device: str = "cpu",
    force: bool = False,
    resume: bool = False,
    max_pixels: int = MAX_PIXELS,
    channel: int | str | None = None,
    client=None,
    progress: bool = True,
    log: Callable[[str], None] = lambda m: print(m, file=sys.stderr),
) -> dict:
    """The ``pancakes match`` command as a function; returns run.json's content (``match`` holds
    the choice). ``client``: a ``distributed.Client``, as for :func:`run_segment`."""
    check_mk_limits(M, K)
    check_device(device)
    if axis not in AXES:
        raise InputError(f"--axis must be one of {sorted(AXES)}, got {axis!r}")
    try:
        model = Pancakes.from_pretrained(resolve(model_path)).set_memory_format("channels_last")
    except WeightsError as exc:
        raise InputError(f"cannot load model {model_path}: {exc}") from exc
    if str(device) != "cpu":
        model = model.to(device)
    context = None
    if model.context is not None:  # the collection is the set: the examples are ranked as its members
        weights = resolve(model_path)
        job = Job(
            M=M, K=K, keep=tuple(range(M)), axis=AXES[axis], device=device, batch=4, partial=Path(),
            max_pixels=max_pixels, channel=channel, model_file=str(Path(weights).resolve()),
            model_sha256=sha256(weights),
        )  # fmt: skip
        context = set_context(job, model, collect_inputs(inputs, log=lambda m: None), client)
    result = rank_examples(
        model, examples, masks, M=M, K=K, multi_label=multi_label, axis=axis, device=device,
        max_pixels=max_pixels, channel=channel, context=context,
    )  # fmt: skip
    if result.warning:
        log(f"warning: {result.warning}")
    return run_segment(
        inputs, out, M=M, K=K, model_path=model_path, axis=axis, device=device, force=force, resume=resume,
        protocols=[result.protocol], max_pixels=max_pixels, channel=channel, client=client, match=result,
        examples=[*examples, *masks], progress=progress, log=log, model=model, context=context,
    )  # fmt: skip
