"""Widening trained weights (network/grow.py): the same function with more UNet channels."""

from __future__ import annotations

import pytest
import torch

from pancakes_model import Pancakes
from pancakes_model.network.grow import widen_state


def _model(seed: int = 0) -> Pancakes:
    """A small model with a per-image set context whose branch is not the identity (every layer the
    widening touches does something)."""
    torch.manual_seed(seed)
    model = Pancakes(features=8, sampler_dims=8, set_context=6, context_per_image=True).eval()
    torch.nn.init.normal_(model.context.mlp[-1].weight, std=0.3)
    return model


def _images(seed: int = 0) -> torch.Tensor:
    return torch.rand(2, 3, 1, 32, 32, generator=torch.Generator().manual_seed(seed))


def test_a_widened_model_computes_the_same_logits():
    model = _model()
    wide = model.grow_features(13, noise=0.0, seed=1).eval()
    assert wide.config.features == 13 and model.config.features == 8
    assert wide.num_parameters() > model.num_parameters()
    x = _images()
    with torch.no_grad():
        before, after = model.factors(x, 3, 4).logits(), wide.factors(x, 3, 4).logits()
    assert before.abs().max() > 1  # logits that mean something, not a constant
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)


def test_the_seed_decides_the_widened_weights_and_noise_sets_the_copies_apart():
    model = _model()
    a, b, c = (model.grow_features(12, seed=s).state_dict() for s in (5, 5, 6))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)
    plain = model.grow_features(12, noise=0.0, seed=5).state_dict()
    key = "featurizer.down.1.2.weight"  # (out, in, 3, 3)
    # the first 8 output channels are the originals' (their inputs split, no noise); copies move
    torch.testing.assert_close(a[key][:8], plain[key][:8])
    assert not torch.allclose(a[key][8:], plain[key][8:])
    x = _images(1)
    with torch.no_grad():
        exact = model.factors(x, 2, 3).logits()
        noisy = model.grow_features(12, seed=5).eval().factors(x, 2, 3).logits()
    assert 0 < (noisy - exact).abs().max() < 0.1 * exact.abs().max()


def test_only_wider_and_only_states_of_the_stated_width():
    model = _model()
    with pytest.raises(ValueError, match="only grow wider"):
        model.grow_features(8)
    with pytest.raises(ValueError, match="not a multiple of 5 channels"):
        widen_state(model.state_dict(), features=5, wider=9)
