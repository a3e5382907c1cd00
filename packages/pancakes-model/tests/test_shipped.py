from __future__ import annotations

import torch

from pancakes_model import Pancakes, read_metadata


def test_shipped_weights_load_and_are_trained():
    model = Pancakes.from_pretrained()
    meta = read_metadata("default")
    prov = meta["provenance"]
    assert prov["totals"]["steps"] > 0  # every stage it went through (the last may be a weight average)
    assert {"config", "commit", "data_sources", "wall_time_s", "hardware"} <= set(prov)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 1, 128, 128, generator=g)
    with torch.no_grad():
        p = model(x, M=8, K=20)
        torch.manual_seed(0)
        q = Pancakes(model.config).eval()(x, M=8, K=20)
    assert p.shape == (1, 3, 8, 20, 128, 128)
    assert torch.isfinite(p).all()
    assert (p - q).abs().max() > 0.1  # not a randomly initialised model
    labels = model.predict_labels(x, M=8, K=20)
    assert labels.shape == (1, 3, 8, 128, 128)
    # a trained model uses several labels per protocol
    assert len(torch.unique(labels[0, 0, 0])) > 1
