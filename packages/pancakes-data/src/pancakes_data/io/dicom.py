"""DICOM straight from the scanner or a PACS export: series found, grouped, read, anonymous.

Folders are scanned recursively; a file is DICOM when bytes 128–131 are ``DICM`` (exports often
have no extension). Files are grouped by SeriesInstanceUID, one input per series, their slices
ordered along the slice normal. Localizers / scouts (ImageType LOCALIZER), segmentation (SEG),
structured reports (SR) and other non-image objects are skipped with a note. Tags are read with
SimpleITK (no extra dependency), pixel data with SimpleITK's series reader, and the volume goes
through torchio's conversion like every other volume.

A series' stem is ``S<SeriesNumber>_<SeriesDescription>`` (sanitised to letters, digits, ``-``,
``_``; ``S<n>`` alone without a description; the first 8 characters of the UID when there is no
number). CT series (Modality CT) are windowed in Hounsfield units. No patient name, ID, birth date
or study date is read into any field: only the tags listed in ``TAGS`` are looked at.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pancakes_data.io.base import ImageData, ReadError
from pancakes_data.io.volumes import volume_from_sitk

__all__ = ["TAGS", "DicomSeries", "find_series", "is_dicom", "read_series"]

TAGS = {
    "series_uid": "0020|000e",
    "modality": "0008|0060",
    "series_number": "0020|0011",
    "series_description": "0008|103e",
    "sop_class": "0008|0016",
    "image_type": "0008|0008",
    "position": "0020|0032",
    "orientation": "0020|0037",
}
# SOP classes that hold no image to segment (segmentations, reports, presentation states, …)
_NON_IMAGE_PREFIXES = ("1.2.840.10008.5.1.4.1.1.66", "1.2.840.10008.5.1.4.1.1.88", "1.2.840.10008.5.1.4.1.1.11")


def is_dicom(path: Path) -> bool:
    """True when the file carries the DICOM preamble (``DICM`` at byte 128)."""
    try:
        with path.open("rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


@dataclass
class DicomSeries:
    uid: str
    files: list[Path]
    modality: str
    number: str
    description: str
    folder: Path
    positions: list[float] = field(default_factory=list)

    @property
    def stem(self) -> str:
        desc = re.sub(r"[^A-Za-z0-9_-]+", "_", self.description).strip("_")[:40]
        head = (
            f"S{int(self.number)}"
            if self.number.strip().lstrip("-").isdigit()
            else f"S{self.uid.replace('.', '')[-8:]}"
        )
        return f"{head}_{desc}" if desc else head


def _tags(path: Path) -> dict[str, str] | None:
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.LoadPrivateTagsOff()
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return None
    return {k: (reader.GetMetaData(t).strip() if reader.HasMetaDataKey(t) else "") for k, t in TAGS.items()}


def find_series(
    folders: Iterable[Path], *, series: Sequence[str] | None = None, log=lambda msg: None
) -> list[DicomSeries]:
    """Every image series under ``folders`` (recursively), optionally only the UIDs in ``series``."""
    groups: dict[str, DicomSeries] = {}
    for folder in folders:
        for f in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
            if not is_dicom(f):
                continue
            tags = _tags(f)
            if tags is None:
                log(f"note: {f.name}: DICOM without readable image information, skipped")
                continue
            kind = tags["image_type"].upper()
            if "LOCALIZER" in kind or "SCOUT" in kind:
                log(f"note: {f.name}: a localizer image, skipped")
                continue
            if tags["sop_class"].startswith(_NON_IMAGE_PREFIXES) or tags["modality"] in (
                "SEG",
                "SR",
                "PR",
                "KO",
                "RTSTRUCT",
            ):
                log(f"note: {f.name}: a {tags['modality'] or 'non-image'} object, skipped")
                continue
            uid = tags["series_uid"] or f"no-uid-{f.parent.name}"
            s = groups.setdefault(
                uid,
                DicomSeries(uid, [], tags["modality"], tags["series_number"], tags["series_description"], Path(folder)),
            )
            s.files.append(f)
            s.positions.append(_slice_position(tags))
    found = list(groups.values())
    if series:
        missing = sorted(set(series) - set(groups))
        if missing:
            raise ReadError(f"--series {missing} not found; the series found are {sorted(groups)}")
        found = [s for s in found if s.uid in set(series)]
    for s in found:
        order = np.argsort(s.positions, kind="stable")
        s.files = [s.files[i] for i in order]
    return sorted(found, key=lambda s: (s.stem, s.uid))


def _slice_position(tags: dict[str, str]) -> float:
    """Position of a slice along its normal (ImageOrientation × ImagePosition)."""
    try:
        o = np.asarray([float(v) for v in tags["orientation"].split("\\")])
        p = np.asarray([float(v) for v in tags["position"].split("\\")])
        return float(np.cross(o[:3], o[3:6]) @ p)
    except (ValueError, IndexError):
        return 0.0


def read_series(series: DicomSeries) -> ImageData:
    """Read one series as a volume (or a 2D image when it has one slice).

    Raises:
        ReadError: unreadable files, or slices that are not evenly spaced (a slice missing or without
            pixel data): a volume would get an averaged, wrong spacing, so it is refused instead.
    """
    import SimpleITK as sitk

    if len(series.positions) >= 3:
        pos = np.sort(np.asarray(series.positions, dtype=np.float64))
        gaps = np.diff(pos)
        step = float(np.median(gaps))
        bad = np.flatnonzero(np.abs(gaps - step) > max(0.01 * abs(step), 1e-3))
        if step == 0 or bad.size:
            where = f"between positions {pos[bad[0]]:.2f} and {pos[bad[0] + 1]:.2f} mm" if bad.size else "everywhere"
            raise ReadError(
                f"DICOM series {series.stem} in {series.folder}: its slices are not evenly spaced ({where}: a "
                "slice is missing or has no pixel data); refusing to build a volume with a wrong spacing"
            )

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(f) for f in series.files])
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise ReadError(f"cannot read DICOM series {series.stem} in {series.folder}: {exc}") from exc
    item = volume_from_sitk(image, series.folder, "dicom", {"series_uid": str(series.uid), "slices": len(series.files)})
    item.stem = series.stem
    item.modality = "ct" if series.modality.upper() == "CT" else "mr"
    item.notes.append(f"DICOM series {series.stem}: {len(series.files)} file(s), modality {series.modality or '?'}")
    return item
