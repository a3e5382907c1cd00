"""The embedded demo set (File › Open Sample › Pancakes): the MNI152 slices pancakes-model ships."""

from __future__ import annotations

import numpy as np
from PIL import Image

from pancakes_model.samples import demo_inputs

__all__ = ["demo_set"]


def demo_set() -> list[tuple[np.ndarray, dict, str]]:
    """One Image layer per demo slice (napari layer-data tuples)."""
    out = []
    for path in demo_inputs():
        with Image.open(path) as im:
            out.append((np.asarray(im.convert("L")), {"name": path.stem}, "image"))
    return out
