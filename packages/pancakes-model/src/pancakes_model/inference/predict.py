"""Prediction for one input at a time: its slices prepared lazily, segmented in batches of its own
slices only, and mapped back to its grid.

An input's label maps never depend on the other inputs of a run except, for a model with a
set-context branch, through the set's summary (a (2C,) vector gathered input by input first): CPU
kernels are not bit-identical across batch shapes, and resumed and distributed runs promise the
same files as one local run, so batches never mix inputs. Memory is bounded per input: the
normalised volume (float32), the label maps in their output dtype and one batch of slices.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch

from pancakes_data import SlicePlan
from pancakes_data.io import GREY_WEIGHTS
from pancakes_model.inference.mapping import queries_to_labels
from pancakes_model.network import Pancakes, check_mk

__all__ = ["combine_shares", "predict_array", "segment", "summarize_array"]


def _slices(norm: np.ndarray, axis: int | None):
    """(index, 2D slice) pairs: the image itself, or a volume's slices along ``axis``."""
    if norm.ndim == 2:
        yield 0, norm
        return
    for i in range(norm.shape[axis]):
        yield i, np.take(norm, i, axis=axis)


def _plane_spacing(data: np.ndarray, spacing: Sequence[float] | None, axis: int) -> tuple[float, ...] | None:
    if spacing is None:
        return None
    return tuple(spacing[:2]) if data.ndim == 2 else tuple(spacing[a] for a in range(3) if a != axis)


def _batches(norm: np.ndarray, axis: int, plane_spacing, size: int, batch: int):
    """(plan, [(slice index, slice on the model grid), …]) in batches of ``batch`` slices of one input."""
    pending: list[tuple[int, np.ndarray]] = []
    plan: SlicePlan | None = None
    for i, sl in _slices(norm, axis):
        plan = plan or SlicePlan.for_slice(sl.shape, plane_spacing, size)
        pending.append((i, plan.forward(sl)))
        if len(pending) == batch:
            yield plan, pending
            pending = []
    if pending:
        yield plan, pending


def _check_input(data: np.ndarray) -> None:
    if data.ndim not in (2, 3):
        raise ValueError(f"expected a 2D image or a 3D volume, got shape {data.shape}")


@torch.inference_mode()
def summarize_array(
    model: Pancakes,
    data: np.ndarray,
    *,
    spacing: Sequence[float] | None = None,
    axis: int = 2,
    modality: str = "mr",
    batch: int = 4,
    device: str | torch.device = "cpu",
    normalized: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """One input's share of the set summary of a model with a set-context branch: the sum of its
    slices' descriptions (float64, (2C,)) and their number. A set's summary is the total sum over
    the total count, gathered input by input in any order (the sum is taken in float64 and each
    input's share does not depend on the others, so a Dask run gets the local run's summary).
    Arguments as :func:`predict_array`."""
    _check_input(data)
    pre = model.preprocess
    norm = normalized if normalized is not None else pre.normalize(data, modality=modality)
    dev = torch.device(device)
    total, count = np.zeros(2 * model.config.features, np.float64), 0
    for _plan, pending in _batches(norm, axis, _plane_spacing(data, spacing, axis), pre.size, batch):
        x = torch.from_numpy(np.stack([im for _, im in pending]))[None, :, None].to(dev)
        total += model.set_summary(x)[0].double().sum(0).cpu().numpy()
        count += len(pending)
    return total, count


def combine_shares(shares: Iterable[tuple[np.ndarray, int]]) -> np.ndarray:
    """The set's summary from its inputs' shares (:func:`summarize_array`), added in the order
    given, in float64 — the one place the summary is formed, so every route gets the same bits."""
    total, count = None, 0
    for share, n in shares:
        total = np.asarray(share, np.float64) if total is None else total + np.asarray(share, np.float64)
        count += n
    if total is None or count == 0:
        raise ValueError("the set is empty: no share to combine")
    return total / count


@torch.inference_mode()
def predict_array(
    model: Pancakes,
    data: np.ndarray,
    *,
    M: int,
    K: int,
    spacing: Sequence[float] | None = None,
    axis: int = 2,
    modality: str = "mr",
    batch: int = 4,
    device: str | torch.device = "cpu",
    progress: Callable[[int], None] | None = None,
    normalized: np.ndarray | None = None,
    context: np.ndarray | None = None,
) -> np.ndarray:
    """Label maps of one 2D image (H, W) or 3D volume, on its own grid.

    Args:
        model: a loaded model (its mode and memory layout are left as they are).
        data: raw intensities, 2D or 3D (finite).
        M, K: protocols and labels per protocol.
        spacing: pixel/voxel size per axis of ``data`` (None: square pixels).
        axis: slicing axis of a volume.
        modality: ``"ct"`` windows Hounsfield units; anything else uses percentiles.
        batch: slices per forward pass (of this input only).
        device: where the network runs.
        progress: called with the number of slices done after each batch.
        normalized: ``data`` already normalised (saves a second pass when the caller has it).
        context: (2C,) the set's summary (:func:`summarize_array`, total / count) for a model with
            a set-context branch; None there: the input is a set of its own (its slices).

    Returns:
        (M, *data.shape) uint8 labels (uint16 when K > 256).
    """
    check_mk(M, K)
    _check_input(data)
    pre = model.preprocess
    norm = normalized if normalized is not None else pre.normalize(data, modality=modality)
    if model.context is not None and context is None:
        share = summarize_array(model, data, axis=axis, spacing=spacing, batch=batch, device=device, normalized=norm)
        context = combine_shares([share])
    dev = torch.device(device)
    ctx = None if context is None else torch.as_tensor(np.asarray(context, np.float32))[None].to(dev)
    # a 2D image's maps are the mapping's own array (no second image-sized copy: 648 MB at 9000²)
    out = np.empty((M, *data.shape), np.uint8 if K <= 256 else np.uint16) if data.ndim == 3 else None
    for plan, pending in _batches(norm, axis, _plane_spacing(data, spacing, axis), pre.size, batch):
        x = torch.from_numpy(np.stack([im for _, im in pending]))[None, :, None].to(dev)
        f = model.factors(x, M, K, context=ctx)
        maps = queries_to_labels(f.q.float().cpu(), f.key.float().cpu(), f.bias.float().cpu(), plan)
        if data.ndim == 2:
            out = maps[0]
        else:
            for (i, _), lab in zip(pending, maps):
                idx = [slice(None)] * 4
                idx[axis + 1] = i
                out[tuple(idx)] = lab
        if progress:
            progress(len(pending))
    return out


def segment(
    images: Sequence[np.ndarray] | np.ndarray, M: int = 8, K: int = 20, *, model: Pancakes | None = None
) -> list[np.ndarray]:
    """Python API: segment in-memory 2D images (one set) into M consistent protocols.

    Args:
        images: a list of 2D arrays (H_i, W_i), grey or RGB/RGBA (H_i, W_i, 3|4, converted to grey
            with the readers' luma weights), any sizes and intensity ranges.
        M, K: protocols and labels per protocol.
        model: a loaded model (default: the shipped weights).

    Returns:
        One int64 array (M, H_i, W_i) per image, at that image's size.

    Warns:
        UserWarning: an image had NaN/inf values (replaced by 0) or is constant.
    """
    check_mk(M, K)
    if isinstance(images, np.ndarray):
        raise ValueError(
            f"images must be a list of 2D arrays (one set), got one array of shape {images.shape}; "
            "wrap a single image as [image]"
        )
    if len(images) == 0:
        raise ValueError("the set is empty: give at least one image")
    arrays = []
    for n, im in enumerate(images):
        arr = np.asarray(im, dtype=np.float32)
        if arr.ndim == 3 and arr.shape[2] in (3, 4):
            arr = arr[..., :3] @ np.asarray(GREY_WEIGHTS, np.float32)
        if arr.ndim != 2:
            raise ValueError(f"image {n}: expected a 2D array (or RGB H×W×3), got shape {arr.shape}")
        if min(arr.shape) < 2:
            raise ValueError(f"image {n}: {arr.shape[0]}×{arr.shape[1]} pixels; at least 2 per side needed")
        if not np.all(np.isfinite(arr)):
            warnings.warn(f"image {n}: NaN/inf values replaced by 0", stacklevel=2)
            arr = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
        if float(arr.max()) == float(arr.min()):
            warnings.warn(f"image {n}: constant image; its label maps are not meaningful", stacklevel=2)
        arrays.append(arr)
    model = model or Pancakes.from_pretrained()
    context = None
    if model.context is not None:  # the images are one set: its summary, gathered image by image
        context = combine_shares(summarize_array(model, arr) for arr in arrays)
    return [predict_array(model, arr, M=M, K=K, context=context).astype(np.int64) for arr in arrays]
