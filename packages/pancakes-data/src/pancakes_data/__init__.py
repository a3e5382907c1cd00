"""pancakes-data: the dataset store, importers, and the multi-protocol set sampler.

The public names load lazily (PEP 562): ``pancakes segment`` uses the readers and the geometry,
not the importers or the set sampler, and a fresh process should not pay for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pancakes_data.__about__ import __version__

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load on first use
    from pancakes_data.errors import UserError, stdout_closed, write_failure
    from pancakes_data.geometry import DEFAULT_PREPROCESS, Preprocess, SlicePlan
    from pancakes_data.importers import (
        import_body_packages,
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

# public name → module
_LAZY = {
    "UserError": "pancakes_data.errors",
    "stdout_closed": "pancakes_data.errors",
    "write_failure": "pancakes_data.errors",
    "DEFAULT_PREPROCESS": "pancakes_data.geometry",
    "Preprocess": "pancakes_data.geometry",
    "SlicePlan": "pancakes_data.geometry",
    "import_body_packages": "pancakes_data.importers",
    "import_brain_packages": "pancakes_data.importers",
    "import_folder": "pancakes_data.importers",
    "import_microscopy_packages": "pancakes_data.importers",
    "import_nnunet": "pancakes_data.importers",
    "import_tiles": "pancakes_data.importers",
    "SamplerConfig": "pancakes_data.sampler",
    "SetSampler": "pancakes_data.sampler",
    "SetSource": "pancakes_data.sampler",
    "Source": "pancakes_data.sampler",
    "collate_sets": "pancakes_data.sampler",
    "SetAugmentation": "pancakes_data.set_augment",
    "paper_across_set": "pancakes_data.set_augment",
    "paper_within_set": "pancakes_data.set_augment",
    "Dataset": "pancakes_data.store",
    "DatasetWriter": "pancakes_data.store",
    "Store": "pancakes_data.store",
    "file_sha256": "pancakes_data.store",
    "split_subjects": "pancakes_data.store",
    "TARGET_KINDS": "pancakes_data.targets",
    "TargetMix": "pancakes_data.targets",
    "draw_target": "pancakes_data.targets",
}

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
    "import_body_packages",
    "import_brain_packages",
    "import_folder",
    "import_microscopy_packages",
    "import_nnunet",
    "import_tiles",
    "paper_across_set",
    "paper_within_set",
    "split_subjects",
    "stdout_closed",
    "write_failure",
]


def __getattr__(name: str) -> Any:
    """Load a public name on first use (see the module docstring)."""
    if name not in _LAZY:
        raise AttributeError(f"module 'pancakes_data' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
