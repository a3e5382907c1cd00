"""The sample images shipped in the wheel (``pancakes demo``, napari's Open Sample, the bioimage.io
package's test tensors): MNI152 2009c axial slices, see ``demo/NOTICE.txt``."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["demo_inputs"]


def demo_inputs() -> list[Path]:
    """The shipped sample images, in name order."""
    folder = Path(str(resources.files("pancakes_model") / "demo"))
    return sorted(folder.glob("*.png"))
