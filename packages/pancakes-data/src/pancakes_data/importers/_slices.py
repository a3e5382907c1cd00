"""Turning one 2D slice (image + label maps) into a store-ready 128×128 pair."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pancakes_data.preprocess import pad_to_square, resize_image, resize_labels, square_pixels


def prepare_pair(
    image: np.ndarray, labels: dict[str, np.ndarray], spacing: Sequence[float], size: int
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Square pixels → pad to square → anti-aliased resize; labels resized label by label."""
    img = resize_image(pad_to_square(square_pixels(image, spacing, order=1)), size)
    out = {p: resize_labels(pad_to_square(square_pixels(lab, spacing, order=0)), size) for p, lab in labels.items()}
    return np.clip(img, 0.0, 1.0), out
