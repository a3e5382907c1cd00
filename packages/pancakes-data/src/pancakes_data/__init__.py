"""pancakes-data: the dataset store, importers, and the multi-protocol set sampler."""

from __future__ import annotations

from pancakes_data.__about__ import __version__
from pancakes_data.errors import UserError, write_failure
from pancakes_data.geometry import DEFAULT_PREPROCESS, Preprocess, SlicePlan
from pancakes_data.importers import (
    import_brain_packages,
    import_folder,
    import_microscopy_packages,
    import_nnunet,
    import_tiles,
)
from pancakes_data.sampler import SamplerConfig, SetSampler, SetSource, Source, collate_sets
from pancakes_data.set_augment import SetAugmentation, paper_across_set, paper_within_set
from pancakes_data.store import Dataset, DatasetWriter, Store, file_sha256, split_subjects
from pancakes_data.targets import TARGET_KINDS, TargetMix, draw_target

__all__ = [
    "DEFAULT_PREPROCESS",
    "TARGET_KINDS",
    "Dataset",
    "DatasetWriter",
    "Preprocess",
    "SamplerConfig",
    "SetAugmentation",
    "SetSampler",
    "SetSource",
    "SlicePlan",
    "Source",
    "Store",
    "TargetMix",
    "UserError",
    "__version__",
    "collate_sets",
    "draw_target",
    "file_sha256",
    "import_brain_packages",
    "import_folder",
    "import_microscopy_packages",
    "import_nnunet",
    "import_tiles",
    "paper_across_set",
    "paper_within_set",
    "split_subjects",
    "write_failure",
]
