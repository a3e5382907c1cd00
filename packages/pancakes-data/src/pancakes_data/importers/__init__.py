"""Importers that turn data people have into datasets of the store."""

from __future__ import annotations

from pancakes_data.importers.body import import_body_packages
from pancakes_data.importers.brain import import_brain_packages
from pancakes_data.importers.folder import import_folder
from pancakes_data.importers.microscopy import import_microscopy_packages
from pancakes_data.importers.nnunet import import_nnunet
from pancakes_data.importers.tiles import import_tiles

__all__ = [
    "import_body_packages",
    "import_brain_packages",
    "import_folder",
    "import_microscopy_packages",
    "import_nnunet",
    "import_tiles",
]
