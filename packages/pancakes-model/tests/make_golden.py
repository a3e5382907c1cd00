"""Regenerate tests/data/golden_demo.npz: the shipped model's label maps on the demo images.

    python packages/pancakes-model/tests/make_golden.py

Run it only together with new shipped weights or a deliberate preprocessing change, and say why in
CHANGELOG.md: the golden test exists so that protocol numbers (what ``--like`` promises) never
change unnoticed. Besides the maps it stores where the two best logits of a pixel are within 1e-3
(computed by full bilinear interpolation of all M·K logits): there CPU kernels of other machines
may legitimately flip the label.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from pancakes_model import Pancakes, segment
from pancakes_model.network import resolve
from pancakes_model.samples import demo_inputs

M, K = 8, 20
OUT = Path(__file__).parent / "data" / "golden_demo.npz"


def ambiguous(model: Pancakes, image: np.ndarray) -> np.ndarray:
    """(M, H, W) True where the top-2 interpolated logits differ by ≤ 1e-3."""
    from pancakes_data import SlicePlan

    pre = model.preprocess
    norm = pre.normalize(image)
    plan = SlicePlan.for_slice(norm.shape, None, pre.size)
    x = torch.from_numpy(plan.forward(norm))[None, None, None]
    with torch.no_grad():
        logits = model(x, M, K, logits=True)[0, 0]  # (M, K, G, G)
    rows, cols = plan.inverse_coords()
    g = pre.size
    grid_y = torch.from_numpy((2 * rows + 1) / g - 1).float()
    grid_x = torch.from_numpy((2 * cols + 1) / g - 1).float()
    grid = torch.stack(torch.meshgrid(grid_y, grid_x, indexing="ij")[::-1], dim=-1)[None]
    up = F.grid_sample(logits, grid.expand(M, -1, -1, -1), mode="bilinear", padding_mode="border", align_corners=False)
    top2 = up.topk(2, dim=1).values
    return (top2[:, 0] - top2[:, 1] <= 1e-3).numpy()


def main() -> None:
    torch.set_num_threads(2)
    model = Pancakes.from_pretrained()
    files = demo_inputs()
    images = [np.asarray(Image.open(f).convert("L"), dtype=np.float32) for f in files]
    maps = segment(images, M, K, model=model)
    data = {"sha256": np.frombuffer(hashlib.sha256(resolve("default").read_bytes()).digest(), np.uint8)}
    for f, img, lab in zip(files, images, maps):
        data[f"{f.stem}/labels"] = lab.astype(np.uint8)
        data[f"{f.stem}/ambiguous"] = np.packbits(ambiguous(model, img))
    OUT.parent.mkdir(exist_ok=True)
    np.savez_compressed(OUT, **data)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
