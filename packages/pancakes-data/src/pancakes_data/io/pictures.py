"""PNG, JPEG and TIFF inputs, read as a person sees them.

* Palette (P-mode) and other indexed images are converted to what they display, not their indices.
* RGB(A) becomes grey with the luma weights (``GREY_WEIGHTS``), with a note.
* A TIFF with several pages is read with tifffile and its ImageJ/OME metadata decide what the pages
  are: z-slices (a volume, with its spacing), channels (pick one with ``channel``) or time points
  (refused); pages without such metadata are refused rather than silently dropped.
* Physical pixel sizes (OME ``PhysicalSize*``, ImageJ ``spacing``/``unit``, TIFF resolution tags in
  µm) are kept, so areas and volumes come out in µm² / µm³.
* The pixel count is checked from the header before decoding: a small file can declare a huge
  image (a decompression bomb); above ``max_pixels`` the file is refused.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from pancakes_data.io.base import GREY_WEIGHTS, MAX_PIXELS, Geometry, ImageData, ReadError, stem_of, suffix_of

__all__ = ["read_picture"]


def _grey(arr: np.ndarray, mode: str, path: Path, notes: list[str]) -> np.ndarray:
    if arr.ndim == 3:
        if arr.shape[2] >= 3:
            notes.append(f"{path.name}: {mode} image converted to grey (luminance)")
            return arr[..., :3].astype(np.float32) @ np.asarray(GREY_WEIGHTS, np.float32)
        return arr[..., 0].astype(np.float32)
    return arr.astype(np.float32)


def _pillow(path: Path, max_pixels: int) -> ImageData:
    from PIL import Image

    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            old = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None  # our own limit below, checked before any decoding
            try:
                with Image.open(path) as im:
                    w, h = im.size
                    if w * h > max_pixels:
                        raise ReadError(
                            f"{path}: {w}×{h} = {w * h:,} pixels is above the limit of {max_pixels:,} "
                            "(a decompression-bomb guard); pass --max-pixels to raise it"
                        )
                    if im.mode in ("P", "PA"):
                        notes.append(f"{path.name}: palette image read as the colours it shows")
                        im = im.convert("RGBA" if "transparency" in im.info or im.mode == "PA" else "RGB")
                    elif im.mode in ("1", "LA", "CMYK", "YCbCr", "LAB", "HSV"):
                        im = im.convert("L" if im.mode in ("1", "LA") else "RGB")
                    mode = im.mode
                    arr = np.asarray(im)
            finally:
                Image.MAX_IMAGE_PIXELS = old
    except ReadError:
        raise
    except Exception as exc:  # PIL raises several types for corrupt files
        raise ReadError(f"cannot read image {path}: {exc}") from exc
    fmt = "jpeg" if suffix_of(path) in (".jpg", ".jpeg") else "png" if suffix_of(path) == ".png" else "tiff"
    return ImageData(path, stem_of(path), "2d", _grey(arr, mode, path, notes), None, "mm", fmt, notes=notes)


def _tiff_spacing(tif, page) -> tuple[tuple[float, float] | None, float | None, str]:
    """(row, col) pixel size, z spacing and unit from OME / ImageJ metadata or resolution tags."""
    unit = "um"
    if tif.ome_metadata:
        import re

        def grab(key: str) -> float | None:
            m = re.search(rf'{key}="([0-9.eE+-]+)"', tif.ome_metadata)
            return float(m.group(1)) if m else None

        x, y, z = grab("PhysicalSizeX"), grab("PhysicalSizeY"), grab("PhysicalSizeZ")
        return ((y or x, x or y) if (x or y) else None), z, unit
    ij = tif.imagej_metadata or {}
    z = float(ij["spacing"]) if "spacing" in ij else None
    try:
        xres, yres = page.tags["XResolution"].value, page.tags["YResolution"].value
        res_unit = page.tags.get("ResolutionUnit")
        px = xres[1] / xres[0] if xres[0] else None
        py = yres[1] / yres[0] if yres[0] else None
        known = ij.get("unit", "").lower() in ("micron", "um", "µm", "\\u00b5m") or (
            res_unit is not None and int(res_unit.value) == 3 and ij  # centimetre tags written by ImageJ
        )
        if px and py and known:
            return (py, px), z, unit
    except (KeyError, TypeError, ZeroDivisionError, AttributeError):
        pass
    return None, z, unit


def _tifffile(path: Path, max_pixels: int, channel: int | str | None) -> ImageData:
    import tifffile

    notes: list[str] = []
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            axes, shape = series.axes, series.shape
            pixels = int(np.prod([n for a, n in zip(axes, shape) if a in "YX"]))
            if pixels > max_pixels:
                raise ReadError(
                    f"{path}: {pixels:,} pixels per plane is above the limit of {max_pixels:,}; "
                    "pass --max-pixels to raise it"
                )
            spacing, z_spacing, unit = _tiff_spacing(tif, series.pages[0] if series.pages else tif.pages[0])
            arr = series.asarray()
            names = []
            if tif.ome_metadata:
                import re

                names = re.findall(r'<Channel [^>]*Name="([^"]*)"', tif.ome_metadata)
            ij = tif.imagej_metadata or {}
    except ReadError:
        raise
    except Exception as exc:  # tifffile raises many types for corrupt files
        raise ReadError(f"cannot read TIFF {path}: {exc}") from exc
    axes = axes.replace("S", "C") if "S" in axes and arr.shape[axes.index("S")] not in (3, 4) else axes
    for a, n in zip(list(axes), arr.shape):
        if a == "T" and n > 1:
            raise ReadError(f"{path}: {n} time points (axes {axes}); save one time point per file")
    squeeze = tuple(i for i, (a, n) in enumerate(zip(axes, arr.shape)) if n == 1 and a not in "YX")
    arr = np.squeeze(arr, axis=squeeze)
    axes = "".join(a for i, a in enumerate(axes) if i not in squeeze)
    if "C" in axes:
        n = arr.shape[axes.index("C")]
        listing = ", ".join(f"{i}: {names[i] if i < len(names) else 'channel ' + str(i)}" for i in range(n))
        if channel is None:
            raise ReadError(f"{path}: {n} channels ({listing}); choose one with --channel N or --channel NAME")
        index = names.index(channel) if isinstance(channel, str) and channel in names else channel
        if isinstance(index, str):
            try:
                index = int(index)
            except ValueError:
                raise ReadError(f"{path}: no channel {channel!r}; the channels are {listing}") from None
        if not 0 <= index < n:
            raise ReadError(f"{path}: channel {index} does not exist; the channels are {listing}")
        arr = np.take(arr, index, axis=axes.index("C"))
        axes = axes.replace("C", "")
        notes.append(f"{path.name}: channel {index} of {n}")
    if axes.endswith("S"):  # RGB samples
        arr = _grey(arr, "RGB", path, notes)
        axes = axes[:-1]
    fmt = "ome-tiff" if tif.ome_metadata else "tiff"
    if axes in ("YX",):
        return ImageData(path, stem_of(path), "2d", arr.astype(np.float32), spacing, unit, fmt, notes=notes)
    if axes in ("ZYX",):
        if not (tif.ome_metadata or ij):
            raise ReadError(f"{path}: {arr.shape[0]} pages without ImageJ/OME metadata saying they are z-slices")
        vol = np.ascontiguousarray(np.transpose(arr, (2, 1, 0)), dtype=np.float32)  # (X, Y, Z) like RAS data
        sp = (spacing[1], spacing[0], z_spacing or spacing[0]) if spacing else None
        geometry = Geometry(z_spacing=z_spacing, spacing_yx=spacing)
        return ImageData(path, stem_of(path), "3d", vol, sp, unit, "ome-tiff", geometry=geometry, notes=notes)
    raise ReadError(
        f"{path}: pages with axes {axes!r} (shape {arr.shape}) — it is unclear whether they are slices, "
        "channels or time points; save them as separate files or with ImageJ/OME metadata"
    )


def read_picture(path: Path, *, max_pixels: int = MAX_PIXELS, channel: int | str | None = None) -> ImageData:
    """Read a PNG, JPEG or TIFF file (see module docstring)."""
    if suffix_of(path) in (".tif", ".tiff", ".ome.tif", ".ome.tiff"):
        try:
            import tifffile
        except ImportError:
            tifffile = None
        if tifffile is not None:
            try:
                with tifffile.TiffFile(path) as tif:
                    several = len(tif.pages) > 1 or bool(tif.ome_metadata) or bool(tif.imagej_metadata)
            except Exception as exc:  # tifffile raises many types for corrupt files
                raise ReadError(f"cannot read TIFF {path}: {exc}") from exc
            if several:
                return _tifffile(path, max_pixels, channel)
    if channel is not None:
        raise ReadError(f"--channel {channel}: {path} is a single picture without channels to choose from")
    return _pillow(path, max_pixels)
