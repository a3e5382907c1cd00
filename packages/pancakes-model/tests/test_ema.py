from __future__ import annotations

import dataclasses

import pytest
import torch

from pancakes_model import Pancakes
from pancakes_model.training import checkpoint
from pancakes_model.training.config import ConfigError, TrainSection, _check, load_config
from pancakes_model.training.ema import WeightAverage


def _model(seed: int) -> Pancakes:
    torch.manual_seed(seed)
    return Pancakes(features=8, sampler_dims=8)


def test_the_average_moves_a_fraction_towards_the_weights_and_lends_them_without_losing_the_live_ones():
    model = _model(0)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    avg = WeightAverage(model, decay=0.75)
    params_before = [id(p) for p in model.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    avg.update(model)
    live = {k: v.clone() for k, v in model.state_dict().items()}
    for name, value in avg.state_dict().items():  # 0.75 · start + 0.25 · (start + 1)
        assert torch.allclose(value, start[name] + 0.25 * (live[name] - start[name]), atol=1e-6), name
    with avg.applied(model) as averaged:
        for name, value in averaged.state_dict().items():
            if value.is_floating_point():
                assert torch.allclose(value, avg.tensors[name]), name
    for name, value in model.state_dict().items():
        assert torch.equal(value, live[name]), name
    assert [id(p) for p in model.parameters()] == params_before  # an optimizer keeps its parameters


def test_a_decay_outside_zero_one_is_refused_in_the_class_and_in_the_config():
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(_model(0), decay=1.0)
    with pytest.raises(ConfigError, match="train.ema"):
        _check(dataclasses.replace(load_config(None), train=TrainSection(ema=1.5)))


@pytest.mark.parametrize("flat", [False, True])
def test_checkpoints_keep_the_average_and_older_ones_start_it_at_their_weights(tmp_path, flat):
    model = _model(1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    avg = WeightAverage(model, decay=0.5)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    opt.step()
    avg.update(model)
    where = checkpoint.save(
        tmp_path / "a", step=1, model=model, optimizer=opt, state={}, provenance={}, flat=flat, ema=avg.state_dict()
    )
    again = _model(2)
    restored = WeightAverage(again, decay=0.5)
    opt2 = torch.optim.AdamW(again.parameters(), lr=1e-2)
    state = checkpoint.load(where, model=again, optimizer=opt2, device=torch.device("cpu"), ema=restored)
    assert state["ema_restored"]
    for name, value in avg.state_dict().items():
        assert torch.equal(restored.tensors[name], value), name
    # a checkpoint written without an average (a run before train.ema existed)
    older = checkpoint.save(tmp_path / "b", step=1, model=model, optimizer=opt, state={}, provenance={}, flat=flat)
    third = _model(3)
    fresh = WeightAverage(third, decay=0.5)
    opt3 = torch.optim.AdamW(third.parameters(), lr=1e-2)
    state = checkpoint.load(older, model=third, optimizer=opt3, device=torch.device("cpu"), ema=fresh)
    assert not state["ema_restored"]
    for name, value in model.state_dict().items():
        if value.is_floating_point():
            assert torch.equal(fresh.tensors[name], value), name
