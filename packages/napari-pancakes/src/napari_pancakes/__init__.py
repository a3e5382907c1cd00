"""napari-pancakes: Pancakes in napari — M consistent segmentation protocols for a set of images,
and the structure a person paints found in every image (widgets registered by ``napari.yaml``)."""

from __future__ import annotations

from napari_pancakes.__about__ import __version__

__all__ = ["__version__"]
