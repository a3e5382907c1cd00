"""From napari layers to a Pancakes set and back — no Qt here; the widgets call these functions.

A set is either several 2D Image layers (any sizes; RGB read by luma, as on the command line),
the slices of one stack layer along a chosen axis, or one 3D layer segmented as a volume (sliced
along the chosen axis, with the layer's ``scale`` as its voxel size). Layers are read one image or
slice at a time (``np.asarray`` of one slice of a dask-backed or multiscale layer's finest level),
so a large layer costs what the command line costs.

Results are one Labels layer per image, of shape (M, …): a slider over protocols browses one
image's M protocols in place, with the report's colours (label k has one colour everywhere).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pancakes_data import UserError
from pancakes_data.io import GREY_WEIGHTS, ArrayInput
from pancakes_data.palette import palette
from pancakes_model.app.common import AXES
from pancakes_model.app.segment import run_segment
from pancakes_model.inference.predict import combine_shares, predict_array, summarize_array
from pancakes_model.network import Pancakes

__all__ = ["MODES", "SetImage", "export_set", "gather", "labels_layer", "segment_set"]

MODES = ("2D image layers", "slices of one layer", "one 3D volume")
AXIS_NAMES = {v: k for k, v in AXES.items()}  # 0 sagittal, 1 coronal, 2 axial: the pipeline's names


@dataclass
class SetImage:
    """One image of the set: where its pixels are, and the geometry of the layer it came from.

    Attributes:
        name: shown in layer names and output file names.
        source: the layer's data (finest level of a multiscale layer).
        index: the slice of ``source`` this image is (None: all of it).
        axis: the stack axis of ``index``, or a volume's slicing axis.
        rgb: ``source`` has a trailing colour axis (read by luma).
        scale, translate: of the image's own axes (the stack axis removed).
        unit: ``"mm"``, ``"um"``, or None when the layer's units are pixels.
    """

    name: str
    source: Any
    index: int | None
    axis: int
    rgb: bool
    scale: tuple[float, ...]
    translate: tuple[float, ...]
    unit: str | None

    @property
    def volume(self) -> bool:
        return self.index is None and np.ndim(self.source) - self.rgb == 3

    @property
    def shape(self) -> tuple[int, ...]:
        """The image's shape, from the layer's without reading its pixels."""
        shape = list(np.shape(self.source))
        if self.rgb:
            shape.pop()
        if self.index is not None:
            shape.pop(self.axis)
        return tuple(shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float32)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """numpy reads the pixels only here (export hands the image itself to the pipeline, which
        reads one image at a time)."""
        arr = self.array()
        return arr if dtype is None else arr.astype(dtype, copy=False)

    def array(self) -> np.ndarray:
        """The pixels as float32 (one slice read at a time; RGB → grey with the luma weights)."""
        data = self.source if self.index is None else np.take(self.source, self.index, axis=self.axis)
        arr = np.asarray(data, dtype=np.float32)
        if self.rgb:
            arr = arr[..., :3] @ np.asarray(GREY_WEIGHTS, np.float32)
        return arr


def _unit(layer) -> str | None:
    units = [str(u) for u in getattr(layer, "units", ())]
    if units and all(u in ("micrometer", "micron", "µm", "um") for u in units):
        return "um"
    if units and all(u in ("millimeter", "mm") for u in units):
        return "mm"
    return None


def _image_layer(layers, name: str):
    if name not in layers:
        raise UserError(f"there is no layer {name!r}")
    layer = layers[name]
    if layer.__class__.__name__ != "Image":
        raise UserError(f"{name!r} is a {layer.__class__.__name__} layer, not an image")
    return layer


def _finest(layer):
    return layer.data[0] if layer.multiscale else layer.data


def gather(layers, *, mode: str, names: Sequence[str] = (), axis: int = 0) -> list[SetImage]:
    """The set the widget's choices describe (see module docstring).

    Raises:
        UserError: no layer chosen, a Labels layer as an image, a layer of the wrong dimension or an
            axis it does not have — the message names the layer.
    """
    if mode not in MODES:
        raise UserError(f"unknown mode {mode!r}; choose one of {list(MODES)}")
    if not names:
        raise UserError("choose the image layer(s) to segment")
    chosen = [_image_layer(layers, n) for n in names]
    if mode == MODES[0]:
        out = []
        for layer in chosen:
            nd = layer.ndim
            if nd != 2:
                raise UserError(
                    f"{layer.name!r} has {nd} dimensions; as '{MODES[0]}' every layer must be 2D — "
                    f"choose '{MODES[1]}' or '{MODES[2]}' for a stack"
                )
            out.append(SetImage(layer.name, _finest(layer), None, 0, layer.rgb, tuple(layer.scale),
                                tuple(layer.translate), _unit(layer)))  # fmt: skip
        return out
    if len(chosen) != 1:
        raise UserError(f"'{mode}' takes one image layer, got {len(chosen)}")
    layer = chosen[0]
    if mode == MODES[2]:
        if layer.ndim != 3:
            raise UserError(f"{layer.name!r} has {layer.ndim} dimensions; a volume must be 3D")
        if not 0 <= axis < 3:
            raise UserError(f"axis {axis}: a volume has the axes 0, 1 and 2")
        return [SetImage(layer.name, _finest(layer), None, axis, layer.rgb, tuple(layer.scale),
                         tuple(layer.translate), _unit(layer))]  # fmt: skip
    if layer.ndim != 3:
        raise UserError(
            f"{layer.name!r} has {layer.ndim} dimensions; '{MODES[1]}' needs a 3D stack (choose the axis of its "
            "images; for a 4D layer, first make a 3D layer of the images you want)"
        )
    if not 0 <= axis < layer.ndim:
        raise UserError(f"axis {axis}: {layer.name!r} has the axes 0 … {layer.ndim - 1}")
    keep = [a for a in range(layer.ndim) if a != axis]
    data = _finest(layer)
    return [
        SetImage(
            f"{layer.name}-{i:03d}",
            data,
            i,
            axis,
            layer.rgb,
            tuple(layer.scale[a] for a in keep),
            tuple(layer.translate[a] for a in keep),
            _unit(layer),
        )
        for i in range(data.shape[axis])
    ]


def segment_set(
    images: Sequence[SetImage], *, M: int, K: int, model: Pancakes, device: str = "cpu",
    cancelled: Callable[[], bool] = lambda: False,
) -> Iterator[tuple[int, np.ndarray]]:  # fmt: skip
    """(image index, labels (M, …) uint8/uint16) for every image of the set, one at a time.

    2D images are segmented exactly as :func:`pancakes_model.segment` does (each on its own, with
    the set's summary first for a model with a set-context branch; the same model gives the same
    labels); a volume as ``pancakes segment`` does, slice by slice along
    its axis with the layer's scale as voxel size.
    """

    def prepared(image: SetImage) -> tuple[np.ndarray, tuple[float, ...] | None]:
        arr = image.array()
        if not np.all(np.isfinite(arr)):
            arr = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
        return arr, image.scale if image.volume else None

    context = None
    if model.context is not None:  # a set-context model: the set's summary first, image by image
        shares = []
        for image in images:
            if cancelled():
                return
            arr, spacing = prepared(image)
            shares.append(summarize_array(model, arr, spacing=spacing, axis=image.axis, device=device))
        context = combine_shares(shares)
    for i, image in enumerate(images):
        if cancelled():
            return
        arr, spacing = prepared(image)
        yield i, predict_array(model, arr, M=M, K=K, spacing=spacing, axis=image.axis, device=device, context=context)


def labels_layer(image: SetImage, labels: np.ndarray, K: int) -> tuple[np.ndarray, dict]:
    """The Labels layer of one image's protocols: data (M, …) and its napari keyword arguments
    (its image's scale and translate behind a protocol axis, the report's colours)."""
    from napari.utils.colormaps import DirectLabelColormap

    colours = palette(max(K, 2)).astype(np.float32) / 255.0
    color_dict = {None: np.zeros(4, np.float32), **{k: np.append(c, 1.0) for k, c in enumerate(colours) if k}}
    kwargs = {
        "name": f"{image.name} protocols",
        "scale": (1.0, *image.scale),
        "translate": (0.0, *image.translate),
        "colormap": DirectLabelColormap(color_dict=color_dict),
        "axis_labels": ("protocol", *[f"axis {a}" for a in range(labels.ndim - 1)]),
        "metadata": {"pancakes": {"K": K, "image": image.name}},
    }
    return labels, kwargs


def export_set(
    images: Sequence[SetImage], out: str | Path, *, M: int, K: int, model_path: str | Path = "default",
    device: str = "cpu", force: bool = False, progress: bool = False,
) -> dict:  # fmt: skip
    """The command line's OUT layout for the set, through ``pancakes segment``'s own pipeline (the
    same OUT rules: never overwritten without ``force``, and ``force`` removes only its own files)."""
    axes = {image.axis for image in images if image.volume} or {AXES["axial"]}
    inputs = [
        ArrayInput(image.name, image, spacing=image.scale if image.unit else None, unit=image.unit or "mm")
        for image in images
    ]
    return run_segment(
        inputs, out, M=M, K=K, model_path=model_path, axis=AXIS_NAMES[axes.pop()], device=device, force=force,
        progress=progress, log=lambda msg: None,
    )  # fmt: skip
