"""Small fake inputs shaped like the real ones, for tests here and in sibling packages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pancakes_data.importers.body import BODY_SOURCES
from pancakes_data.importers.brain import BRAIN_SOURCES
from pancakes_data.store import DatasetWriter

__all__ = [
    "write_dicom_series",
    "write_fake_body_packages",
    "write_fake_brain_packages",
    "write_nnunet_tree",
    "write_store",
]


def _ellipsoids(shape, n, rng, *, label_values=None):
    zz, yy, xx = np.indices(shape)
    out = np.zeros(shape, np.int16)
    for i in range(n):
        c = rng.uniform(0.25, 0.75, 3) * np.asarray(shape)
        r = rng.uniform(0.12, 0.3, 3) * np.asarray(shape)
        m = ((zz - c[0]) / r[0]) ** 2 + ((yy - c[1]) / r[1]) ** 2 + ((xx - c[2]) / r[2]) ** 2 <= 1
        out[m] = label_values[i] if label_values is not None else i + 1
    return out


def write_nnunet_tree(root: str | Path, *, cases: int = 3, shape=(20, 24, 16), v2: bool = True, seed: int = 0) -> Path:
    """A tiny nnU-Net v2 (or MSD) raw dataset with 2 labels and anisotropic voxels."""
    import nibabel as nib

    root = Path(root)
    (root / "imagesTr").mkdir(parents=True, exist_ok=True)
    (root / "labelsTr").mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    aff = np.diag([0.8, 0.8, 2.5, 1.0])
    training = []
    for c in range(cases):
        lab = _ellipsoids(shape, 2, rng)
        img = (100 + 50 * lab + rng.normal(0, 5, shape)).astype(np.float32)
        case = f"case_{c:03d}"
        name = f"{case}_0000.nii.gz" if v2 else f"{case}.nii.gz"
        nib.save(nib.Nifti1Image(img, aff), root / "imagesTr" / name)
        nib.save(nib.Nifti1Image(lab.astype(np.uint8), aff), root / "labelsTr" / f"{case}.nii.gz")
        training.append({"image": f"./imagesTr/{case}.nii.gz", "label": f"./labelsTr/{case}.nii.gz"})
    if v2:
        meta = {
            "channel_names": {"0": "MRI"},
            "labels": {"background": 0, "organ": 1, "lesion": 2},
            "numTraining": cases,
            "file_ending": ".nii.gz",
        }
    else:
        meta = {
            "modality": {"0": "MRI"},
            "labels": {"0": "background", "1": "organ", "2": "lesion"},
            "training": training,
        }
    (root / "dataset.json").write_text(json.dumps(meta), encoding="utf-8")
    return root


def write_fake_brain_packages(root: str | Path, *, seed: int = 0) -> dict[str, Path]:
    """Package folders with the real file names and CSV formats but tiny random volumes.

    Returns the ``folders`` mapping for :func:`pancakes_data.import_brain_packages`.
    """
    import nibabel as nib

    root = Path(root)
    rng = np.random.default_rng(seed)
    shape = (40, 48, 40)
    # 4 mm voxels around the MNI origin, LAS like most of the real files
    aff = np.array([[-4.0, 0, 0, 80], [0, 4.0, 0, -114], [0, 0, 4.0, -70], [0, 0, 0, 1]])
    brain = _ellipsoids(shape, 1, np.random.default_rng(1)) > 0
    brain |= np.pad(np.ones((24, 30, 24), bool), ((8, 8), (9, 9), (8, 8)))
    folders = {}
    for key, src in BRAIN_SOURCES.items():
        base = root / key
        folders[key] = base
        d = base / src.subdir
        t1 = (brain * rng.uniform(50, 200, shape)).astype(np.float32)
        (d / src.image).parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(t1, aff), d / src.image)
        for name, atlas in src.atlases.items():
            values = [3, 7, 11, 12] if not atlas.probabilistic else [0, 1, 2]
            (d / atlas.file).parent.mkdir(parents=True, exist_ok=True)
            if atlas.probabilistic:
                lab = _ellipsoids(shape, 3, rng)
                probs = np.stack([(lab == k + 1) * 80 for k in values], axis=-1).astype(np.uint8)
                nib.save(nib.Nifti1Image(probs, aff), d / atlas.file)
            else:
                lab = _ellipsoids(shape, 4, rng, label_values=values) * brain
                nib.save(nib.Nifti1Image(lab.astype(np.uint8), aff), d / atlas.file)
            names = {3: "FL superior frontal gyrus L", 7: "TL hippocampus R", 11: "OL cuneus L", 12: "Left-Thalamus"}
            if name.startswith("schaefer") or key == "deepmriprep":
                lines = ["ROIid;ROIname"] + [f"{v};{names.get(v, f'region {v}')}" for v in values]
            else:
                lines = ["index,name"] + [f"{v},{names.get(v, f'region_{v}')}" for v in values]
            (d / atlas.labels).write_text("\n".join(lines) + "\n", encoding="utf-8")
        if src.tissue is not None:
            first, second = src.tissue(src)
            if second is None:
                gm = rng.uniform(0, 1, shape) * brain
                chans = np.stack([gm, (1 - gm) * brain, 1.0 - brain], -1).astype(np.float32)
                nib.save(nib.Nifti1Image(chans, aff), d / first)
            else:
                gm = (rng.uniform(0, 1, shape) * brain * 255).astype(np.uint8)
                wm = ((255 - gm) * brain).astype(np.uint8)
                nib.save(nib.Nifti1Image(gm, aff), d / first)
                nib.save(nib.Nifti1Image(wm, aff), d / second)
    return folders


def _write_seg_nrrd(path: Path, data: np.ndarray, spacing, names: dict[int, str]) -> None:
    """A raw 3D NRRD (x fastest) with 3D Slicer's ``Segment<i>_*`` header fields."""
    directions = " ".join("(" + ",".join(str(spacing[i] if j == i else 0) for j in range(3)) + ")" for i in range(3))
    header = [
        "NRRD0004",
        f"type: {'unsigned char' if data.dtype == np.uint8 else 'short'}",
        "dimension: 3",
        "space: left-posterior-superior",
        f"sizes: {' '.join(str(n) for n in data.shape)}",
        f"space directions: {directions}",
        "kinds: domain domain domain",
        "endian: little",
        "encoding: raw",
        "space origin: (0,0,0)",
    ]
    for i, (value, name) in enumerate(names.items()):
        header += [f"Segment{i}_ID:=Segment_{value}", f"Segment{i}_LabelValue:={value}", f"Segment{i}_Name:={name}"]
    path.parent.mkdir(parents=True, exist_ok=True)
    body = np.ascontiguousarray(data.transpose(2, 1, 0)).astype(data.dtype.newbyteorder("<")).tobytes()
    path.write_bytes(("\n".join(header) + "\n\n").encode() + body)


def write_fake_body_packages(root: str | Path, *, seed: int = 0) -> dict[str, Path]:
    """The tptbox and slicerio data files at their real paths, as tiny random volumes.

    Returns the ``folders`` mapping for :func:`pancakes_data.import_body_packages`.
    """
    import nibabel as nib

    root = Path(root)
    rng = np.random.default_rng(seed)
    shape = (20, 14, 18)
    for src in BODY_SOURCES.values():
        values = {"vertebrae": [21, 22, 122], "subregions": [41, 50, 61], "segments": [1, 2, 3]}
        image = rng.normal(0, 30, shape) + (300 if src.is_ct else 100)
        labels = {p: _ellipsoids(shape, 3, rng, label_values=values[p]) for p, _ in src.protocols}
        for lab in labels.values():
            image[lab > 0] += 400 if src.is_ct else 150
        if src.image.endswith(".nrrd"):
            _write_seg_nrrd(root / src.image, image.astype(np.int16), (3.0, 3.0, 10.0), {})
            for protocol, file in src.protocols:
                names = {1: "ribs", 2: "right lung", 3: "tissue"}
                _write_seg_nrrd(root / file, labels[protocol].astype(np.uint8), (3.0, 3.0, 10.0), names)
        else:
            aff = np.diag([1.5, 1.5, 1.5, 1.0])
            (root / src.image).parent.mkdir(parents=True, exist_ok=True)
            nib.save(nib.Nifti1Image(image.astype(np.int16), aff), root / src.image)
            for protocol, file in src.protocols:
                nib.save(nib.Nifti1Image(labels[protocol].astype(np.uint8), aff), root / file)
    return dict.fromkeys(BODY_SOURCES, root)


def write_store(root: str | Path, *, name: str = "toy", n: int = 12, size: int = 32, seed: int = 0):
    """A store dataset of ``n`` images with two protocols (a 4-label one and its 2-label merge)."""

    rng = np.random.default_rng(seed)
    w = DatasetWriter(
        root,
        name,
        protocols={"fine": {1: "a", 2: "b", 3: "c"}, "coarse": {1: "ab", 2: "c"}},
        size=(size, size),
        overwrite=True,
    )
    yy, xx = np.indices((size, size))
    for i in range(n):
        fine = np.zeros((size, size), np.int64)
        fine[: size // 2, : size // 2] = 1
        fine[: size // 2, size // 2 :] = 2
        c = rng.integers(size // 4, 3 * size // 4, 2)
        fine[(yy - c[0]) ** 2 + (xx - c[1]) ** 2 < (size // 6) ** 2] = 3
        coarse = np.select([fine == 1, fine == 2, fine == 3], [1, 1, 2], 0)
        img = fine / 3.0 * 0.8 + rng.normal(0, 0.02, (size, size))
        w.add(np.clip(img, 0, 1), {"fine": fine, "coarse": coarse}, subject=f"s{i // 2}")
    return w.close(seed=seed)


def write_dicom_series(folder, *, uid, number, description, modality, slices=4, localizer=False):
    """A small DICOM series (SimpleITK/GDCM) in ``folder``: files without extension, a patient name
    ("Doe^Jane") that must never appear in outputs, 0.7 × 0.7 × 3 mm voxels; ``localizer`` marks
    every slice as a LOCALIZER image."""
    import locale

    import SimpleITK as sitk

    folder = Path(folder)
    saved = locale.setlocale(locale.LC_ALL)  # GDCM's writer switches the process to the C locale
    folder.mkdir(parents=True, exist_ok=True)
    vol = sitk.GetImageFromArray((np.arange(slices * 8 * 9).reshape(slices, 8, 9) % 97).astype(np.int16))
    vol.SetSpacing((0.7, 0.7, 3.0))
    vol.SetOrigin((1.0, 2.0, 3.0))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    writer.SetImageIO("GDCMImageIO")
    kind = "ORIGINAL\\PRIMARY\\LOCALIZER" if localizer else "ORIGINAL\\PRIMARY\\AXIAL"
    for i in range(slices):
        sl = vol[:, :, i]
        for tag, value in (
            ("0020|000e", uid),
            ("0020|0011", str(number)),
            ("0008|103e", description),
            ("0008|0060", modality),
            ("0008|0008", kind),
            ("0010|0010", "Doe^Jane"),  # a patient name that must appear nowhere
            ("0020|0037", "1\\0\\0\\0\\1\\0"),
            ("0020|0032", "\\".join(map(str, vol.TransformIndexToPhysicalPoint((0, 0, i))))),
            ("0020|0013", str(i + 1)),
        ):
            sl.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"IM{number}{i:04d}"))  # no extension, as PACS exports
        writer.Execute(sl)
    locale.setlocale(locale.LC_ALL, saved)
