"""Segment a collection of images or volumes into M consistent protocols (``pancakes segment``).

All inputs of one call form the set: label k of protocol m means the same structure in every
input. Preprocessing is the training recipe (``pancakes_data.preprocess``): percentile
normalisation to [0, 1], square pixels, zero-pad to a square, anti-aliased resize to 128×128.
Outputs are mapped back to each input's own size and grid (logits are interpolated, then argmax).

Output layout of ``OUT`` (other tools depend on it):

    OUT/labels/<stem>_m{m:02d}.png      2D inputs: uint8 (uint16 if K > 256), input's width × height
    OUT/labels/<stem>_m{m:02d}.nii.gz   NIfTI inputs: input's shape, affine and header, integer dtype
    OUT/labels/labels.txt               ITK-SNAP label description (the overview's palette)
    OUT/overview.png                    protocols (rows) × inputs (columns), labels over images
    OUT/report.html                     self-contained page: protocols side by side + statistics
    OUT/stats.csv                       input,protocol,label,count,area_mm2,volume_ml
    OUT/run.json                        versions, model hash, M, K, protocols kept, timings

Everything is written to a temporary folder next to OUT and moved into place at the end.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange

from pancakes_model.network import Pancakes, check_mk

__all__ = ["IMAGE_SUFFIXES", "InputError", "SegmentInput", "read_input", "run_segment", "segment"]

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".nii", ".nii.gz")
AXES = {"sagittal": 0, "coronal": 1, "axial": 2}
SIZE = 128
MAX_SHOWN = 24  # inputs drawn in overview.png / report.html (statistics cover every input)
STATS_COLUMNS = ("input", "protocol", "label", "count", "area_mm2", "volume_ml")  # stats.csv header


class InputError(ValueError):
    """A problem with the user's input (reported with exit code 2, no traceback)."""


def stem_of(path: Path) -> str:
    name = path.name
    for suf in IMAGE_SUFFIXES:
        if name.lower().endswith(suf):
            return name[: -len(suf)]
    return path.stem


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return next((s for s in IMAGE_SUFFIXES if name.endswith(s)), path.suffix.lower())


@dataclass
class SegmentInput:
    """One input file, read and ready to slice.

    Attributes:
        path, stem: the file and its name without the image suffix.
        kind: "2d" or "3d".
        data: 2D (H, W) array, or 3D array in canonical RAS orientation.
        spacing: pixel/voxel size in mm (None when the format does not carry it).
        nifti: the original nibabel image (NIfTI inputs only).
        notes: warnings shown to the user (RGB converted, constant image, …).
    """

    path: Path
    stem: str
    kind: str
    data: np.ndarray
    spacing: tuple[float, ...] | None
    nifti: object | None = None
    canonical: object | None = None
    notes: list[str] = field(default_factory=list)
    display: np.ndarray | None = None  # normalised 2D image shown in the overview (kept from inference)


def read_input(path: Path) -> SegmentInput:
    """Read a PNG/JPEG/TIFF (grey, 16-bit or RGB → grey) or a 2D/3D NIfTI file."""
    if not path.is_file():
        raise InputError(f"input not found: {path}")
    suffix = _suffix(path)
    notes: list[str] = []
    if suffix in (".nii", ".nii.gz"):
        import nibabel as nib

        try:
            img = nib.load(str(path))
            shape = img.shape
        except Exception as exc:  # nibabel raises many types for corrupt files
            raise InputError(f"cannot read NIfTI {path}: {exc}") from exc
        if len(shape) == 4 and shape[3] == 1:
            img = img.slicer[..., 0]
            shape = img.shape
        if len(shape) == 4:
            raise InputError(f"{path}: 4D NIfTI {shape} is not supported; split the volumes (e.g. fslsplit)")
        if len(shape) == 3 and shape[2] == 1:
            data = np.asarray(img.dataobj, dtype=np.float32)[:, :, 0]
            zooms = tuple(float(z) for z in img.header.get_zooms()[:2])
            return _check(SegmentInput(path, stem_of(path), "2d", data, zooms, img, None, notes))
        if len(shape) not in (2, 3):
            raise InputError(f"{path}: expected a 2D or 3D image, got shape {shape}")
        if len(shape) == 2:
            data = np.asarray(img.dataobj, dtype=np.float32)
            zooms = tuple(float(z) for z in img.header.get_zooms()[:2])
            return _check(SegmentInput(path, stem_of(path), "2d", data, zooms, img, None, notes))
        try:
            canonical = nib.as_closest_canonical(img)
            data = np.asarray(canonical.dataobj, dtype=np.float32)
        except Exception as exc:
            raise InputError(f"cannot read NIfTI {path}: {exc}") from exc
        zooms = tuple(float(z) for z in canonical.header.get_zooms()[:3])
        return _check(SegmentInput(path, stem_of(path), "3d", data, zooms, img, canonical, notes))
    if suffix not in (".png", ".tif", ".tiff", ".jpg", ".jpeg"):
        raise InputError(f"{path}: unsupported file type; use PNG, JPEG, TIFF or NIfTI")
    from PIL import Image

    try:
        with Image.open(path) as im:
            arr = np.asarray(im)
            mode = im.mode
    except Exception as exc:  # PIL raises several types for corrupt files
        raise InputError(f"cannot read image {path}: {exc}") from exc
    if arr.ndim == 3:
        if arr.shape[2] >= 3:
            notes.append(f"{path.name}: {mode} image converted to grey (luminance)")
            arr = arr[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        else:
            arr = arr[..., 0]
    return _check(SegmentInput(path, stem_of(path), "2d", arr.astype(np.float32), None, None, None, notes))


def _check(item: SegmentInput) -> SegmentInput:
    shape = item.data.shape
    if min(shape) < 2:
        raise InputError(f"{item.path}: image is {'×'.join(map(str, shape))} pixels; at least 2 per side needed")
    if not np.all(np.isfinite(item.data)):
        item.notes.append(f"{item.path.name}: NaN/inf values replaced by 0")
        item.data = np.nan_to_num(item.data, nan=0.0, posinf=0.0, neginf=0.0)
    if float(item.data.max()) == float(item.data.min()):
        item.notes.append(f"{item.path.name}: constant image; its label maps are not meaningful")
    return item


# ---------------------------------------------------------------------------- geometry
@dataclass
class _Plan:
    """How one 2D slice was mapped to 128×128, to map the predictions back."""

    shape: tuple[int, int]  # original slice shape
    square: tuple[int, int]  # shape after resampling to square pixels
    pad: tuple[int, int]  # (top, left) padding to the square side n
    n: int


def _prepare_slice(slice2d: np.ndarray, spacing: Sequence[float] | None) -> tuple[np.ndarray, _Plan]:
    from pancakes_data.preprocess import pad_to_square, resize_image, square_pixels

    sq = square_pixels(slice2d, spacing, order=1) if spacing is not None else slice2d
    n = max(sq.shape)
    top, left = (n - sq.shape[0]) // 2, (n - sq.shape[1]) // 2
    img = resize_image(pad_to_square(sq), SIZE)
    return np.clip(img, 0.0, 1.0), _Plan(tuple(slice2d.shape), tuple(sq.shape), (top, left), n)


def _source_coords(plan: _Plan) -> tuple[np.ndarray, np.ndarray]:
    """Source coordinates (in the 128 grid, pixel centres at integers) of every output row and
    column: the inverse of square-pixel resampling, padding and resizing."""
    h_out, w_out = plan.shape
    top, left = plan.pad
    h_sq, w_sq = plan.square
    scale = SIZE / plan.n
    rows = ((np.arange(h_out) + 0.5) * h_sq / h_out - 0.5 + top + 0.5) * scale - 0.5
    cols = ((np.arange(w_out) + 0.5) * w_sq / w_out - 0.5 + left + 0.5) * scale - 0.5
    return rows, cols


def _queries_to_labels(q: torch.Tensor, key: torch.Tensor, bias: torch.Tensor, plan: _Plan) -> np.ndarray:
    """Queries of n slices that share one plan → (n, M, H, W) labels on their original grid.

    Equal to bilinear interpolation (border padding, ``align_corners=False``) of the logits
    ``q·key + bias`` to the output grid followed by argmax over K, computed where it matters:

    - the argmax at 128×128 is taken once; an output pixel whose 2×2 source cell has one label in
      a protocol takes that label (a convex blend of logit vectors that all rank k first still
      ranks k first);
    - only output pixels whose cell is mixed in that protocol are computed exactly, and there the
      query (D values) is interpolated instead of the M·K logits (the logits are linear in q).

    The n slices go through every step together: on a CPU most of these steps cost more to
    launch than to run at this size.

    Args:
        q: (n, D, 128, 128) queries.
        key: (M, K, D) keys with the temperature folded in; bias: (M, K).
        plan: how each slice was mapped to 128×128.

    Returns:
        (n, M, H, W) uint8 labels (uint16 when K > 256).
    """
    n = q.shape[0]
    m_count, k_count, d = key.shape
    pix128 = SIZE * SIZE
    # Logits at 128² as a 1×1 convolution of q in the standard layout, which measured faster
    # than the same product as a matmul (n, K·M, 128, 128); channels are label-major, so that
    # each label's maps of a slice form one contiguous block for _argmax0.
    flat_key = rearrange(key, "M K D -> (K M) D 1 1").contiguous()
    logits = F.conv2d(q.contiguous(), flat_key, rearrange(bias, "M K -> (K M)").contiguous())
    small = k_count <= 256
    by_label = rearrange(logits.view(n, k_count, m_count * pix128), "N K P -> K N P")
    lab = _argmax0(by_label, dtype=torch.uint8 if small else torch.int32)  # (n, M·128²)
    del logits, by_label
    # rows ordered (protocol, slice): the pairs found below then come grouped by protocol
    lab128 = rearrange(lab, "N (M H W) -> (M N) H W", M=m_count, H=SIZE).contiguous()
    # A 2×2 cell (i..i+1, j..j+1) is mixed when any of its four edges joins two labels.
    vert = lab128[:, 1:] != lab128[:, :-1]
    horz = lab128[:, :, 1:] != lab128[:, :, :-1]
    mixed = torch.zeros(m_count * n, SIZE, SIZE, dtype=torch.bool)
    mixed[:, :-1] |= vert
    mixed[:, :-1, :-1] |= vert[:, :, 1:]
    mixed[:, :, :-1] |= horz
    mixed[:, :-1, :-1] |= horz[:, 1:]
    # Border padding clamps the coordinates; output pixel (y, x) lies in the cell (r0, c0) with
    # weights fy, fx on row r0 + 1 and column c0 + 1.
    rows, cols = _source_coords(plan)
    rc, cc = np.clip(rows, 0, SIZE - 1), np.clip(cols, 0, SIZE - 1)
    r0 = np.minimum(np.floor(rc).astype(np.int64), SIZE - 2)
    c0 = np.minimum(np.floor(cc).astype(np.int64), SIZE - 2)
    h_out, w_out = plan.shape
    pix_out = h_out * w_out
    near = (np.rint(rc).astype(np.int64)[:, None] * SIZE + np.rint(cc).astype(np.int64)).ravel()
    cell = (r0[:, None] * SIZE + c0).ravel()
    # numpy's take along an axis is several times faster than torch's index_select or advanced
    # indexing for these small-integer gathers on a CPU. Rows are (protocol, slice) pairs.
    out = np.take(lab128.numpy().reshape(m_count * n, pix128), near, axis=1)  # each cell's label
    mixed_out = np.take(mixed.numpy().reshape(m_count * n, pix128), cell, axis=1)
    pairs = torch.from_numpy(np.flatnonzero(mixed_out))  # sorted by protocol, then slice, pixel
    if pairs.numel():
        mm, rest = pairs // (n * pix_out), pairs % (n * pix_out)
        ss, pix = rest // pix_out, rest % pix_out
        yy, xx = pix // w_out, pix % w_out
        # Separable bilinear interpolation of q: columns first for every source row of every
        # slice ((n·128·W, D)), then rows only at the (protocol, pixel) pairs that need it.
        qt = rearrange(q, "N D H W -> N H W D")
        c0t = torch.from_numpy(c0)
        fx = torch.from_numpy((cc - c0).astype(np.float32))[None, None, :, None].expand(n, SIZE, w_out, d)
        by_col = torch.lerp(qt.index_select(2, c0t), qt.index_select(2, c0t + 1), fx).reshape(-1, d)
        r0t = torch.from_numpy(r0).index_select(0, yy)
        fy = torch.from_numpy((rc - r0).astype(np.float32)).index_select(0, yy)[:, None].expand(-1, d)
        upper = (ss * SIZE + r0t) * w_out + xx
        qp = torch.lerp(by_col.index_select(0, upper), by_col.index_select(0, upper + w_out), fy)  # (pairs, D)
        # Per protocol (shared by all slices): (K, pairs) logits, label-major for _argmax0.
        counts = torch.bincount(mm, minlength=m_count).tolist()
        best = torch.cat(
            [
                _argmax0(torch.addmm(bias[m][:, None], key[m], part.T))
                for m, part in enumerate(torch.split(qp, counts))
                if counts[m]
            ]
        )
        out.reshape(-1)[pairs.numpy()] = best.numpy()
    out = rearrange(out, "(M N) (H W) -> N M H W", M=m_count, H=h_out)
    return out if small else out.astype(np.uint16)


def _thread_map(fn: Callable, values: Sequence) -> list:
    """``[fn(v) for v in values]`` on as many threads as torch uses (numpy, scipy.ndimage, PIL
    and nibabel release the GIL for most of reading and preprocessing); the first error raises."""
    workers = min(len(values), torch.get_num_threads())
    if workers <= 1:
        return [fn(v) for v in values]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, values))


def _runs(values: Sequence) -> list[tuple[int, int]]:
    """[start, stop) index ranges of runs of equal consecutive values."""
    bounds = [0] + [i for i in range(1, len(values)) if values[i] != values[i - 1]] + [len(values)]
    return list(pairwise(bounds))


def _argmax0(x: torch.Tensor, dtype: torch.dtype = torch.int64) -> torch.Tensor:
    """argmax over the first axis of (K, ...); ties keep the lowest index, like ``argmax``.

    On a CPU ``x.argmax(0)`` over a strided leading axis is slow (~10× this for K = 20 and
    8 × 128² maps), while ``amax(0)`` is fast: take the maximum, mark where each k attains it
    with the code K − k, and the largest code is the lowest winning index.

    Args:
        x: (K, ...) finite values.
        dtype: dtype of the result.
    """
    k = x.shape[0]
    code_dtype = torch.uint8 if k < 256 else torch.int32
    codes = torch.arange(k, 0, -1, dtype=code_dtype).view(k, *([1] * (x.ndim - 1)))
    hit = torch.empty(x.shape, dtype=code_dtype)
    if code_dtype == torch.uint8:
        torch.eq(x, x.amax(dim=0), out=hit.view(torch.bool))  # no separate bool → uint8 copy
    else:
        hit.copy_(torch.eq(x, x.amax(dim=0)))
    hit.mul_(codes)
    # k − (largest code); clamp: a NaN column has no code at all
    return hit.amax(dim=0).neg_().add_(k).clamp_(0, k - 1).to(dtype)


# ---------------------------------------------------------------------------- inference
def _normalize(data: np.ndarray) -> np.ndarray:
    from pancakes_data.preprocess import normalize_intensity

    return normalize_intensity(data)


def _slices(
    item: SegmentInput, axis: int, *, keep_display: bool = False
) -> list[tuple[np.ndarray, Sequence[float] | None]]:
    norm = _normalize(item.data)
    if keep_display:
        item.display = _display_image(norm, item.kind, axis)
    if item.kind == "2d":
        return [(norm, item.spacing)]
    other = [a for a in range(3) if a != axis]
    sp = [item.spacing[a] for a in other] if item.spacing else None
    return [(np.take(norm, i, axis=axis), sp) for i in range(norm.shape[axis])]


def predict_items(
    model: Pancakes,
    items: Sequence[SegmentInput],
    *,
    M: int,
    K: int,
    axis: int = 2,
    batch: int = 4,
    device: str = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> list[np.ndarray]:
    """Label maps per input: (M, H, W) for 2D, (M, *canonical shape) for 3D volumes
    (uint8, or uint16 when K > 256)."""

    def prepare(i: int) -> list[tuple[int, int, np.ndarray, _Plan]]:
        slices = _slices(items[i], axis, keep_display=i < MAX_SHOWN)
        return [(i, j, *_prepare_slice(sl, sp)) for j, (sl, sp) in enumerate(slices)]

    jobs = [job for group in _thread_map(prepare, range(len(items))) for job in group]  # (item, slice, image, plan)
    # Labels are kept in the output dtype: int64 maps for hundreds of inputs would not fit in memory.
    dtype = np.uint8 if K <= 256 else np.uint16
    results = [np.zeros((M, *item.data.shape), dtype=dtype) for item in items]
    dev = torch.device(device)
    for start in range(0, len(jobs), batch):
        chunk = jobs[start : start + batch]
        x = torch.from_numpy(np.stack([c[2] for c in chunk]))[None, :, None].float().to(dev)
        with torch.inference_mode():
            f = model.factors(x, M, K)
            q, key, bias = f.q.cpu(), f.key.cpu(), f.bias.cpu()  # q: (n, D, 128, 128)
            maps = []
            for start_g, stop_g in _runs([c[3] for c in chunk]):  # slices that share a plan, together
                maps.extend(_queries_to_labels(q[start_g:stop_g], key, bias, chunk[start_g][3]))
        for (i, j, _, _), labels in zip(chunk, maps):
            if items[i].kind == "2d":
                results[i][...] = labels
            else:
                idx = [slice(None)] * 4
                idx[axis + 1] = j
                results[i][tuple(idx)] = labels
        if progress:
            progress(min(start + batch, len(jobs)), len(jobs))
    return results


def segment(
    images: Sequence[np.ndarray], M: int = 8, K: int = 20, *, model: Pancakes | None = None
) -> list[np.ndarray]:
    """Python API: segment in-memory 2D images (one set) into M protocols.

    Args:
        images: grey 2D arrays (H_i, W_i), any sizes and intensity ranges.
        M, K: protocols and labels per protocol.
        model: a loaded model (default: the shipped weights).

    Returns:
        One int64 array (M, H_i, W_i) per image, at that image's size.
    """
    check_mk(M, K)
    if len(images) == 0:
        raise ValueError("the set is empty: give at least one image")
    items = []
    for n, im in enumerate(images):
        arr = np.asarray(im, dtype=np.float32)
        if arr.ndim != 2:
            raise ValueError(f"image {n}: expected a 2D array, got shape {arr.shape}")
        items.append(_check(SegmentInput(Path(f"image{n}"), f"image{n}", "2d", arr, None)))
    model = model or Pancakes.from_pretrained()
    return [lab.astype(np.int64) for lab in predict_items(model, items, M=M, K=K)]


# ---------------------------------------------------------------------------- writing
def _write_label_file(item: SegmentInput, labels: np.ndarray, path: Path, K: int) -> None:
    dtype = np.uint8 if K <= 256 else np.uint16
    if item.nifti is None:
        from pancakes_model.app.render import save_png

        save_png(labels.astype(dtype, copy=False), path, labels=True)
        return
    import nibabel as nib

    img = item.nifti
    if item.kind == "3d":
        # back from canonical (RAS) to the input's own orientation
        canon_ornt = nib.orientations.io_orientation(item.canonical.affine)
        orig_ornt = nib.orientations.io_orientation(img.affine)
        labels = nib.orientations.apply_orientation(labels, nib.orientations.ornt_transform(canon_ornt, orig_ornt))
    elif len(img.shape) == 3:  # stored as (X, Y, 1)
        labels = labels[..., None]
    header = img.header.copy()
    header.set_data_dtype(dtype)
    header["scl_slope"], header["scl_inter"] = 1.0, 0.0
    out = nib.Nifti1Image(np.ascontiguousarray(labels.astype(dtype)), img.affine, header)
    nib.save(out, str(path))


def _display_image(norm: np.ndarray, kind: str, axis: int) -> np.ndarray:
    """The 2D image shown for an input: itself, or a volume's middle slice along ``axis``."""
    if kind == "2d":
        return norm
    # display with the superior/anterior side up
    return np.rot90(np.take(norm, norm.shape[axis] // 2, axis=axis))


def _preview_slice(item: SegmentInput, labels: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Image (H, W) in [0, 1] and label maps (M, H, W) to show for one input."""
    img = item.display if item.display is not None else _display_image(_normalize(item.data), item.kind, axis)
    if item.kind == "2d":
        return img, labels
    lab = np.take(labels, labels.shape[axis + 1] // 2, axis=axis + 1)
    return img, np.stack([np.rot90(m) for m in lab])


def _report(items, overview_png: bytes, stats_rows, protocols, meta) -> str:
    """The self-contained HTML report.

    The overview picture is embedded once; each figure of the page shows one of its tiles
    (a CSS sprite), so the page costs no further image encoding and stays about the size of
    overview.png.
    """
    from pancakes_model.app.render import PALETTE, grid_tile_origin

    esc = html.escape

    def tile(column: int, row: int, alt: str) -> str:
        x, y = grid_tile_origin(column, row)
        return (
            f'<figure><div class="t" role="img" aria-label="{esc(alt)}" style="background-position:-{x}px -{y}px">'
            f"</div><figcaption>{esc(items[column].stem)}</figcaption></figure>"
        )

    rows = []
    for m_out, m in enumerate(protocols):
        cells = "".join(tile(s, m_out + 1, f"{item.stem} protocol {m}") for s, item in enumerate(items))
        rows.append(f'<section id="m{m:02d}"><h2>Protocol {m}</h2><div class="row">{cells}</div></section>')
    originals = "".join(tile(s, 0, item.stem) for s, item in enumerate(items))

    def swatch(label: int) -> str:
        r, g, b = (int(c) for c in PALETTE[label % len(PALETTE)])
        return f'<span class="sw" style="background:rgb({r},{g},{b})"></span>'

    table = "".join(
        "<tr>"
        + "".join(f"<td>{esc(str(r[k]))}</td>" for k in STATS_COLUMNS)
        + f"<td>{swatch(int(r['label']))}</td></tr>"
        for r in stats_rows
    )
    nav = " ".join(f'<a href="#m{m:02d}">{m}</a>' for m in protocols)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Pancakes report</title>
<style>
body{{font-family:system-ui,sans-serif;margin:1.5em;background:#fafafa;color:#222}}
.row{{display:flex;flex-wrap:wrap;gap:8px}} figure{{margin:0;text-align:center}}
.t{{width:128px;height:128px;border:1px solid #ccc;background-repeat:no-repeat;
background-image:url(data:image/png;base64,{base64.b64encode(overview_png).decode()})}}
figcaption{{font-size:12px}} table{{border-collapse:collapse;font-size:12px}}
td,th{{border:1px solid #ddd;padding:2px 6px}} .sw{{display:inline-block;width:14px;height:14px}}
section{{margin-bottom:1.2em}}
</style></head><body>
<h1>Pancakes: {len(items)} input(s), {len(protocols)} protocol(s), K = {meta["K"]}</h1>
<p>Each row is one protocol; a colour (label) means the same structure in every image of the row.
Pick the protocol that fits your study and rerun with <code>--protocol N --like OUT</code>.
Model {esc(meta["model"])} ({esc(meta["model_sha256"][:12])}), M = {meta["M"]}, K = {meta["K"]}.</p>
<p>Protocols: {nav}</p>
<section><h2>Inputs</h2><div class="row">{originals}</div></section>
{"".join(rows)}
<h2>Per-label statistics</h2>
<table><tr><th>input</th><th>protocol</th><th>label</th><th>count</th><th>area (mm²)</th><th>volume (ml)</th>
<th>colour</th></tr>{table}</table>
</body></html>
"""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def collect_inputs(paths: Sequence[str | Path]) -> list[Path]:
    """Files as given; directories contribute their image files (sorted, not recursive)."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and _suffix(f) in IMAGE_SUFFIXES)
            if not found:
                raise InputError(f"directory {p} holds no PNG/JPEG/TIFF/NIfTI files")
            files += found
        elif p.exists():
            files.append(p)
        else:
            raise InputError(f"input not found: {p}")
    if not files:
        raise InputError("no inputs given")
    stems: dict[str, Path] = {}
    for f in files:
        s = stem_of(f)
        if s in stems:
            raise InputError(f"two inputs have the same name stem {s!r}: {stems[s]} and {f}; rename one")
        stems[s] = f
    return files


def run_segment(
    inputs: Sequence[str | Path],
    out: str | Path,
    *,
    M: int = 8,
    K: int = 20,
    model_path: str | Path = "default",
    axis: str = "axial",
    device: str = "cpu",
    force: bool = False,
    protocols: Sequence[int] | None = None,
    like: str | Path | None = None,
    progress: bool = True,
    log: Callable[[str], None] = lambda m: print(m, file=sys.stderr),
) -> dict:
    """The ``pancakes segment`` command as a function; returns run.json's content."""
    t_start = time.perf_counter()
    try:
        check_mk(M, K)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    if axis not in AXES:
        raise InputError(f"--axis must be one of {sorted(AXES)}, got {axis!r}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise InputError(f"output {out} exists and is not empty; pass --force to replace it")
    from pancakes_model.network.weights import resolve

    try:
        weights = resolve(model_path)
        model = Pancakes.from_pretrained(weights).set_memory_format("channels_last")
    except (FileNotFoundError, ValueError) as exc:
        raise InputError(f"cannot load model {model_path}: {exc}") from exc
    model_hash = _sha256(weights)
    if like is not None:
        ref_path = Path(like) / "run.json" if Path(like).is_dir() else Path(like)
        if not ref_path.is_file():
            raise InputError(f"--like: no run.json at {ref_path}")
        ref = json.loads(ref_path.read_text())
        diffs = [
            f"{k}: earlier {ref.get(k)!r}, now {v!r}"
            for k, v in (("M", M), ("K", K), ("model_sha256", model_hash))
            if ref.get(k) != v
        ]
        if diffs:
            raise InputError(
                "protocol numbers are defined by (M, K, model), and this run differs from "
                f"{ref_path}: " + "; ".join(diffs) + ". Use the same -M, -K and --model."
            )
    keep = sorted(set(protocols)) if protocols else list(range(M))
    bad = [m for m in keep if not 0 <= m < M]
    if bad:
        raise InputError(f"--protocol {bad} out of range: protocols are numbered 0..{M - 1}")

    files = collect_inputs(inputs)
    t_read = time.perf_counter()
    items = _thread_map(read_input, files)
    kinds = {it.kind for it in items}
    if len(kinds) > 1:
        raise InputError("the set mixes 2D images and 3D volumes; segment them in separate calls")
    for it in items:
        for note in it.notes:
            log(f"note: {note}")
    t_infer = time.perf_counter()

    def bar(done: int, total: int) -> None:
        if progress:
            sys.stderr.write(f"\rsegmenting: {done}/{total} slices")
            sys.stderr.flush()

    labels = predict_items(model, items, M=M, K=K, axis=AXES[axis], device=device, progress=bar)
    if progress:
        sys.stderr.write("\n")
    t_write = time.perf_counter()

    parent = out.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    from pancakes_model.app.render import encode_png, itksnap_labels, protocol_grid

    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=parent))
    try:
        (tmp / "labels").mkdir()
        previews = [
            (img, pl[keep])
            for img, pl in (_preview_slice(it, lab, AXES[axis]) for it, lab in zip(items[:MAX_SHOWN], labels))
        ]
        if len(items) > MAX_SHOWN:
            log(f"note: overview and report show the first {MAX_SHOWN} of {len(items)} inputs")
        meta = _run_meta(items, M, K, keep, str(model_path), weights, model_hash, axis, device)

        def overview() -> bytes:
            grid = protocol_grid(
                [p[0] for p in previews], [list(p[1]) for p in previews], titles=[it.stem for it in items]
            )
            png = encode_png(grid, workers=2)
            (tmp / "overview.png").write_bytes(png)
            return png

        # The overview is drawn in a second thread (numpy, PIL and zlib release the GIL) beside
        # the label files instead of after them: otherwise this single-threaded stage leaves the
        # second core idle.
        stats_rows = _stats_rows(items, labels, keep, K)  # many tiny calls: slower beside a busy thread
        with ThreadPoolExecutor(1) as pool:
            drawn = pool.submit(overview)
            for item, lab in zip(items, labels):
                ext = ".nii.gz" if item.nifti is not None else ".png"
                for m in keep:
                    _write_label_file(item, lab[m], tmp / "labels" / f"{item.stem}_m{m:02d}{ext}", K)
            png = drawn.result()
        (tmp / "report.html").write_text(_report(items[:MAX_SHOWN], png, stats_rows, keep, meta))
        (tmp / "labels" / "labels.txt").write_text(itksnap_labels(K))
        with (tmp / "stats.csv").open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(STATS_COLUMNS))
            w.writeheader()
            w.writerows(stats_rows)
        t_end = time.perf_counter()
        meta["timings_s"] = {
            "startup_and_model": round(t_read - t_start, 3),
            "read": round(t_infer - t_read, 3),
            "inference": round(t_write - t_infer, 3),
            "write": round(t_end - t_write, 3),
            "total": round(t_end - t_start, 3),
        }
        (tmp / "run.json").write_text(json.dumps(meta, indent=1))
        _move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


def _stats_rows(items: Sequence[SegmentInput], labels: Sequence[np.ndarray], keep: Sequence[int], K: int) -> list[dict]:
    """stats.csv rows: pixel/voxel count per (input, protocol, present label), with area (2D)
    or volume (3D) when the input carries its spacing."""
    rows = []
    for item, lab in zip(items, labels):
        unit = float(np.prod(item.spacing)) if item.spacing is not None else None
        area = unit is not None and item.kind == "2d"
        volume = unit is not None and item.kind == "3d"
        for m in keep:
            # torch's bincount counts a uint8 map as it is (numpy's copies it to int64 first);
            # tolist() gives Python ints, much cheaper per row than numpy scalars.
            flat = torch.from_numpy(lab[m] if lab.dtype == np.uint8 else lab[m].astype(np.int32)).reshape(-1)
            for k, count in enumerate(torch.bincount(flat, minlength=K).tolist()):
                if count:
                    rows.append(
                        {
                            "input": item.path.name,
                            "protocol": m,
                            "label": k,
                            "count": count,
                            "area_mm2": round(count * unit, 4) if area else "",
                            "volume_ml": round(count * unit / 1000.0, 6) if volume else "",
                        }
                    )
    return rows


def _run_meta(items, M, K, keep, model_name, weights, model_hash, axis, device) -> dict:
    import importlib.metadata as md

    versions = {}
    for pkg in ("pancakes-model", "pancakes-data", "torch", "numpy", "nibabel", "pillow"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    return {
        "format": "pancakes-segment/1",
        "M": M,
        "K": K,
        "protocols": keep,
        "model": model_name,
        "model_file": str(weights),
        "model_sha256": model_hash,
        "axis": axis,
        "device": device,
        "inputs": [
            {
                "file": str(it.path),
                "stem": it.stem,
                "kind": it.kind,
                "shape": list(it.data.shape),
                "spacing": list(it.spacing) if it.spacing else None,
            }
            for it in items
        ],
        "versions": versions,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _move_into_place(tmp: Path, out: Path) -> None:
    """Atomically (per rename) replace ``out`` with ``tmp``; an old ``out`` is removed only after."""
    if out.exists():
        backup = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(backup)
        tmp.rename(out)
        shutil.rmtree(backup, ignore_errors=True)
    else:
        tmp.rename(out)
