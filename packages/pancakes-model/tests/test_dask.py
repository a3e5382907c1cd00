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
    quiet = {"M": 3, "K": 4, "progress": False, "log": lambda m: None}
    segment_collection([src], tmp_path / "local", **quiet)
    client = dask_client("local:2")
    try:
        meta = segment_collection([src], tmp_path / "dask", client=client, **quiet)
    finally:
        close_client(client)
    assert meta["M"] == 3 and (tmp_path / "dask" / "run.json").is_file()
    names = sorted(p.name for p in (tmp_path / "local" / "labels").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "dask" / "labels").iterdir())
    for name in names:
        assert filecmp.cmp(tmp_path / "local" / "labels" / name, tmp_path / "dask" / "labels" / name, shallow=False)
    assert (tmp_path / "local" / "stats.csv").read_bytes() == (tmp_path / "dask" / "stats.csv").read_bytes()
    assert not (tmp_path / "dask" / ".partial").exists()
