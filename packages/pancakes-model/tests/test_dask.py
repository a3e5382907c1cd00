"""Batch segmentation on Dask writes byte-identical files to a local run (issue 15)."""

from __future__ import annotations

import filecmp

import numpy as np
import pytest
from PIL import Image

distributed = pytest.importorskip("distributed")


@pytest.mark.slow
def test_a_local_dask_cluster_writes_the_files_of_a_local_run(tmp_path):
    from pancakes_model import segment_collection
    from pancakes_model.app.execution import close_client, dask_client

    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        img = rng.normal(100, 10, (40 + i, 50)).clip(0, 255)
        img[10:25, 12:30] += 80
        Image.fromarray(img.astype(np.uint8)).save(src / f"s{i}.png")
    import torch

    from pancakes_model import Pancakes

    torch.manual_seed(0)  # each input's share of a set-context model's summary is a task too
    shipped = Pancakes.from_pretrained("default")
    torch.nn.init.normal_(shipped.context.mlp[-1].weight, std=0.3)  # a branch that clearly acts
    models = {"default": "default", "context": str(shipped.save_pretrained(tmp_path / "ctx.safetensors"))}
    quiet = {"M": 3, "K": 4, "progress": False, "log": lambda m: None}
    for name, model in models.items():
        segment_collection([src], tmp_path / f"local-{name}", model_path=model, **quiet)
    client = dask_client("local:2")
    try:
        metas = {
            name: segment_collection([src], tmp_path / f"dask-{name}", client=client, model_path=model, **quiet)
            for name, model in models.items()
        }
    finally:
        close_client(client)
    assert all(len(meta["set_context"]) == 2 * shipped.config.features for meta in metas.values())
    for name, meta in metas.items():
        local, dask = tmp_path / f"local-{name}", tmp_path / f"dask-{name}"
        assert meta["M"] == 3 and (dask / "run.json").is_file()
        names = sorted(p.name for p in (local / "labels").iterdir())
        assert names == sorted(p.name for p in (dask / "labels").iterdir())
        for label in names:
            assert filecmp.cmp(local / "labels" / label, dask / "labels" / label, shallow=False)
        assert (local / "stats.csv").read_bytes() == (dask / "stats.csv").read_bytes()
        assert not (dask / ".partial").exists()
