"""Reading inputs as a person sees them, and writing results in the input's own format.

One reader for every command (``pancakes segment``, the importers, ``pancakes-eval score``):
PNG/JPEG/TIFF (Pillow, tifffile), NIfTI/NRRD/MHA (torchio), DICOM series (SimpleITK via torchio).
"""

from __future__ import annotations

import stat
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from pancakes_data.io.arrays import ArrayInput
from pancakes_data.io.base import (
    GREY_WEIGHTS,
    INPUT_SUFFIXES,
    MAX_PIXELS,
    MAX_VOXELS,
    Geometry,
    ImageData,
    ReadError,
    stem_of,
    suffix_of,
)
from pancakes_data.io.dicom import DicomSeries, find_series, is_dicom, read_series
from pancakes_data.io.pictures import read_picture
from pancakes_data.io.png import encode_png
from pancakes_data.io.volumes import FORMATS, _header_shape, read_volume
from pancakes_data.io.writing import atomic_write, write_bytes, write_labels, write_text
from pancakes_eval.io import integer_labels, read_label_image

__all__ = [
    "GREY_WEIGHTS",
    "INPUT_SUFFIXES",
    "MAX_PIXELS",
    "MAX_VOXELS",
    "ArrayInput",
    "DicomSeries",
    "Geometry",
    "ImageData",
    "InputRef",
    "ReadError",
    "atomic_write",
    "collect_inputs",
    "encode_png",
    "find_series",
    "is_dicom",
    "peek_kind",
    "read_image",
    "read_input",
    "read_labels",
    "read_series",
    "stem_of",
    "suffix_of",
    "write_bytes",
    "write_labels",
    "write_text",
]

InputRef = Path | DicomSeries | ArrayInput  # a file, a DICOM series found in a folder, an image in memory
_PICTURES = (".png", ".tif", ".tiff", ".ome.tif", ".ome.tiff", ".jpg", ".jpeg")


def read_image(path: str | Path, *, max_pixels: int = MAX_PIXELS, channel: int | str | None = None) -> ImageData:
    """Read one image file (any supported format; a DICOM file reads its whole series' folder).

    Raises:
        ReadError: a missing, corrupt, unsupported or ambiguous file (the message names it).
    """

    p = Path(path)
    _check_path(p)
    if p.is_dir():
        series = find_series([p])
        if len(series) != 1:
            raise ReadError(f"{p}: {len(series)} DICOM series found; pass one series")
        return read_series(series[0])
    if not p.is_file():
        raise ReadError(f"input not found: {p}")
    suffix = suffix_of(p)
    if suffix in _PICTURES:
        return read_picture(p, max_pixels=max_pixels, channel=channel)
    if suffix in FORMATS:
        return read_volume(p)
    if is_dicom(p) or suffix == ".dcm":
        series = [s for s in find_series([p.parent]) if p in s.files]
        if not series:
            raise ReadError(f"{p}: a DICOM file without an image series")
        return read_series(series[0])
    raise ReadError(f"{p}: unsupported file type; use PNG, JPEG, TIFF, NIfTI, NRRD, MHA/MHD or DICOM")


def read_labels(path: str | Path) -> ImageData:
    """Read a label map or mask: pictures through pancakes-eval's label reader (palette indices
    kept, colour refused unless grey), volumes as :func:`read_image` reads them (the same grid as
    their image); either way the values must be integers (refused otherwise, naming the file)."""
    p = Path(path)
    if suffix_of(p) in (".png", ".tif", ".tiff", ".jpg", ".jpeg"):
        try:
            arr, _ = read_label_image(p)
        except (OSError, ValueError) as exc:
            raise ReadError(str(exc) if str(p) in str(exc) else f"cannot read {p}: {exc}") from exc
        if arr.ndim != 2:
            raise ReadError(f"{p}: a label picture must be 2D, got shape {arr.shape}")
        return ImageData(p, stem_of(p), "2d", arr.astype(np.float32), None, "mm", "png")
    item = read_image(p)
    try:
        integer_labels(item.data, p)
    except ValueError as exc:
        raise ReadError(str(exc)) from exc
    return item


def read_input(ref: InputRef, *, max_pixels: int = MAX_PIXELS, channel: int | str | None = None) -> ImageData:
    """Read what :func:`collect_inputs` found."""
    if isinstance(ref, DicomSeries):
        return read_series(ref)
    if isinstance(ref, ArrayInput):
        return ref.read()
    return read_image(ref, max_pixels=max_pixels, channel=channel)


def peek_kind(ref: InputRef) -> str:
    """``"2d"`` or ``"3d"`` from the header alone (to refuse a mixed set before any work)."""

    if isinstance(ref, DicomSeries):
        return "3d" if len(ref.files) > 1 else "2d"
    if isinstance(ref, ArrayInput):
        return ref.kind
    p = Path(ref)
    suffix = suffix_of(p)
    try:
        if suffix in FORMATS:
            shape = _header_shape(p)
            return "3d" if len(shape) >= 3 and shape[2] > 1 else "2d"
        if suffix in (".tif", ".tiff", ".ome.tif", ".ome.tiff"):
            import tifffile

            with tifffile.TiffFile(p) as tif:
                axes, shape = tif.series[0].axes, tif.series[0].shape
            return "3d" if "Z" in axes and shape[axes.index("Z")] > 1 else "2d"
    except Exception:  # unreadable: the reader itself says why, with the file's name
        return "unknown"
    return "2d"


def ref_name(ref: InputRef) -> str:
    return ref.stem if isinstance(ref, (DicomSeries, ArrayInput)) else stem_of(ref)


def collect_inputs(
    paths: Sequence[str | Path | ArrayInput],
    *,
    series: Sequence[str] | None = None,
    log: Callable[[str], None] = lambda msg: None,
) -> list[InputRef]:
    """Files as given; folders contribute their image files (sorted) and every DICOM series
    found in them recursively (``series``: only these SeriesInstanceUIDs); in-memory images
    (:class:`ArrayInput`) as given.

    Raises:
        ReadError: a missing path, a folder without images, two inputs with the same stem.
    """
    files: list[InputRef] = []
    dicom_folders: list[Path] = []
    for given in paths:
        if isinstance(given, ArrayInput):
            files.append(given)
            continue
        p = Path(given)
        _check_path(p)
        if p.is_dir():
            try:
                found = sorted(
                    f for f in p.iterdir() if f.is_file() and suffix_of(f) in INPUT_SUFFIXES and suffix_of(f) != ".dcm"
                )
                files += found
                has_dicom = any(is_dicom(f) for f in p.rglob("*") if f.is_file() and f not in found)
            except PermissionError as exc:
                raise ReadError(f"cannot read the folder {exc.filename or p}: permission denied") from exc
            if has_dicom:
                dicom_folders.append(p)
            elif not found:
                raise ReadError(f"directory {p} holds no PNG/JPEG/TIFF/NIfTI/NRRD/MHA files or DICOM series")
        elif is_dicom(p):
            dicom_folders.append(p.parent)
        else:
            files.append(p)
    if dicom_folders:
        found_series = find_series(sorted(set(dicom_folders)), series=series, log=log)
        if not found_series and not files and not series:
            raise ReadError(
                f"{', '.join(map(str, sorted(set(dicom_folders))))}: DICOM files found, but no series with "
                "pixel data (localizers, SEG/SR objects and files without images are skipped)"
            )
        files += found_series
    elif series:
        raise ReadError(f"--series {list(series)}: no DICOM series among the inputs")
    if not files:
        raise ReadError("no inputs given")
    stems: dict[str, InputRef] = {}
    for f in files:
        s = ref_name(f)
        if s in stems:
            raise ReadError(f"two inputs have the same name stem {s!r}: {_where(stems[s])} and {_where(f)}; rename one")
        stems[s] = f
    return files


def _check_path(p: Path) -> None:
    """A path that exists and is a regular file or folder, or one line saying what it is instead."""
    try:
        st = p.stat()
    except FileNotFoundError:
        if p.is_symlink():
            raise ReadError(f"input {p} is a broken symbolic link (its target does not exist)") from None
        raise ReadError(f"input not found: {p}") from None
    except PermissionError:
        raise ReadError(f"cannot read {p}: permission denied") from None
    except OSError as exc:  # ELOOP: a symlink loop; ENAMETOOLONG, …
        raise ReadError(f"cannot read {p}: {exc.strerror or exc}") from None
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        kind = "a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode) else "not a regular file"
        raise ReadError(f"input {p} is {kind}; give image files or folders")


def _where(ref: InputRef) -> str:
    if isinstance(ref, DicomSeries):
        return f"DICOM series {ref.uid}"
    return f"image {ref.name!r}" if isinstance(ref, ArrayInput) else str(ref)
