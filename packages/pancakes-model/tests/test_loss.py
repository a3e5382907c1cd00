from __future__ import annotations

import pytest
import torch

from pancakes_model import (
    Pancakes,
    candidate_dice_losses,
    joint_set_dice_loss,
    set_dice_loss,
    winner_only_joint_set_dice_loss,
    winner_only_set_dice_loss,
)


def targets_from(probs_label_map, k):
    return (probs_label_map == k).float()[:, :, None]


def test_loss_is_zero_for_a_perfect_candidate():
    g = torch.Generator().manual_seed(0)
    lab = torch.randint(0, 4, (2, 3, 16, 16), generator=g)  # (B, S, H, W), protocol 1 is perfect
    probs = torch.rand(2, 3, 2, 4, 16, 16, generator=g).softmax(dim=3)
    probs[:, :, 1] = torch.nn.functional.one_hot(lab, 4).permute(0, 1, 4, 2, 3).float()
    res = set_dice_loss(probs, targets_from(lab, 2))
    assert res.loss.item() == pytest.approx(0.0, abs=1e-6)
    assert res.protocol.tolist() == [1, 1]
    assert res.label.tolist() == [2, 2]


def test_loss_picks_the_true_minimum():
    g = torch.Generator().manual_seed(1)
    probs = torch.rand(2, 3, 4, 5, 8, 8, generator=g).softmax(dim=3)
    y = (torch.rand(2, 3, 1, 8, 8, generator=g) > 0.5).float()
    res = set_dice_loss(probs, y)
    brute = torch.empty(2, 4, 5)
    for b in range(2):
        for m in range(4):
            for k in range(5):
                per = []
                for s in range(3):
                    p, t = probs[b, s, m, k], y[b, s, 0]
                    per.append(1 - (2 * (p * t).sum() + 1e-5) / (p.sum() + t.sum() + 1e-5))
                brute[b, m, k] = torch.stack(per).mean()
    torch.testing.assert_close(res.table, brute)
    assert res.loss.item() == pytest.approx(brute.flatten(1).min(1).values.mean().item(), rel=1e-5)


def test_empty_targets_are_finite_and_prefer_empty_predictions():
    probs = torch.zeros(1, 2, 1, 2, 8, 8)
    probs[:, :, 0, 0] = 1.0  # label 0 everywhere, label 1 empty
    y = torch.zeros(1, 2, 1, 8, 8)
    d = candidate_dice_losses(probs, y)
    assert torch.isfinite(d).all()
    assert d[0, 0, 1] < 1e-6 < d[0, 0, 0]


def test_winner_only_matches_full_loss_value_and_gradients():
    torch.manual_seed(0)
    model = Pancakes()
    g = torch.Generator().manual_seed(2)
    x = torch.rand(2, 3, 1, 32, 32, generator=g)
    y = (torch.rand(2, 3, 1, 32, 32, generator=g) > 0.6).float()
    full = set_dice_loss(model(x, M=4, K=6), y)
    fast = _same_value_and_gradients(model, full.loss, lambda: winner_only_set_dice_loss(model, x, y, 4, 6))
    assert fast.protocol.tolist() == full.protocol.tolist()
    assert fast.label.tolist() == full.label.tolist()


def _same_value_and_gradients(model, expected: torch.Tensor, fast_loss):
    """Backward of ``expected`` (built on the full probabilities), then of ``fast_loss()``: the
    same value and the same gradients of every parameter; returns the fast result."""
    expected.backward()
    grads_full = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    fast = fast_loss()
    fast.loss.backward()
    assert fast.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    for a, b in zip(grads_full, (p.grad for p in model.parameters())):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    return fast


def test_joint_variant_uses_two_labels_of_one_protocol():
    lab = torch.randint(0, 3, (1, 2, 8, 8), generator=torch.Generator().manual_seed(4))
    lab[..., 0, 0], lab[..., 0, 1] = 0, 1
    onehot = torch.nn.functional.one_hot(lab, 3).permute(0, 1, 4, 2, 3).float()
    probs = torch.full((1, 2, 3, 3, 8, 8), 1 / 3)
    probs[:, :, 2] = onehot
    y = torch.stack([targets_from(lab, 0), targets_from(lab, 1)])  # (T=2, B, S, 1, H, W)
    res = joint_set_dice_loss(probs, y)
    assert res.loss.item() == pytest.approx(0.0, abs=1e-6)
    assert res.protocol.tolist() == [2]
    assert res.label.tolist() == [[0, 1]]
    with pytest.raises(ValueError, match="T = 1 or 2"):
        joint_set_dice_loss(probs, torch.cat([y, y[:1]]))


def _two_targets(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2, 3, 1, 32, 32, generator=g)
    lab = torch.randint(0, 3, (2, 3, 1, 32, 32), generator=g)
    return x, torch.stack([(lab == 1).float(), (lab == 2).float()])  # two disjoint structures


def test_winner_only_joint_matches_full_joint_loss_value_and_gradients():
    torch.manual_seed(0)
    model = Pancakes()
    x, y = _two_targets(5)
    full = joint_set_dice_loss(model(x, M=4, K=6), y)
    fast = _same_value_and_gradients(model, full.loss, lambda: winner_only_joint_set_dice_loss(model, x, y, 4, 6))
    assert fast.protocol.tolist() == full.protocol.tolist()
    assert fast.label.tolist() == full.label.tolist()
    assert all(k1 != k2 for k1, k2 in fast.label.tolist())


@pytest.mark.parametrize("w", [0.0, 0.4])
def test_winner_only_joint_weight_mixes_the_single_and_the_joint_loss(w):
    torch.manual_seed(1)
    model = Pancakes()
    x, y = _two_targets(6)
    probs = model(x, M=4, K=6)
    expected = w * joint_set_dice_loss(probs, y).loss + (1 - w) * set_dice_loss(probs, y[0]).loss
    _same_value_and_gradients(
        model, expected, lambda: winner_only_joint_set_dice_loss(model, x, y, 4, 6, joint_weight=w)
    )
    with pytest.raises(ValueError, match="joint_weight"):
        winner_only_joint_set_dice_loss(model, x, y, 4, 6, joint_weight=1.5)


def test_bad_target_shape():
    with pytest.raises(ValueError, match="do not match"):
        set_dice_loss(torch.rand(1, 2, 1, 2, 8, 8), torch.rand(1, 3, 1, 8, 8))


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize(("size", "m", "k"), [(32, 5, 7), (48, 15, 40)])  # one pixel chunk; 6 with a short last
def test_candidate_table_equals_the_softmax_path(layout, size, m, k):
    from einops import rearrange

    from pancakes_model.loss import candidate_table

    torch.manual_seed(5)
    model = Pancakes().set_memory_format(layout)
    x = torch.rand(2, 3, 1, size, size)
    y = (torch.rand(2, 3, 1, size, size) > 0.6).float()
    with torch.no_grad():
        f = model.factors(x, m, k)
        assert f.q.is_contiguous(memory_format=torch.channels_last) == (layout == "channels_last")
        probs = rearrange(f.probs(), "(B S) M K H W -> B S M K H W", B=2)
        torch.testing.assert_close(candidate_table(f, y), candidate_dice_losses(probs, y), rtol=1e-5, atol=1e-6)


def test_one_pass_of_tables_equals_one_table_per_target():
    from pancakes_model.loss import candidate_table, candidate_tables

    torch.manual_seed(9)
    model = Pancakes()
    x = torch.rand(2, 3, 1, 32, 32)
    y = (torch.rand(2, 2, 3, 1, 32, 32) > torch.tensor([0.3, 0.8]).view(2, 1, 1, 1, 1, 1)).float()
    with torch.no_grad():
        f = model.factors(x, 6, 9)
        both = candidate_tables(f, y)
        assert both.shape == (2, 2, 6, 9)
        for t in range(2):
            torch.testing.assert_close(both[t], candidate_table(f, y[t]), rtol=1e-6, atol=1e-7)
        assert not torch.allclose(both[0], both[1])  # the two targets' tables differ


@pytest.mark.parametrize("elements", [1 << 27, 3 * 12 * 20 * 24 * 24])  # one block; 3 images a block, short last
def test_the_accelerator_blocks_give_the_cpu_loop_sums(elements):
    from pancakes_model.loss import _table_sums_blocks, _table_sums_cache

    gen = torch.Generator().manual_seed(8)
    n, d, m, k, pixels = 7, 16, 12, 20, 24 * 24
    q = torch.nn.functional.normalize(torch.randn(n, d, pixels, generator=gen), dim=1)
    y = (torch.rand(n, 2, pixels, generator=gen) > 0.7).float()  # two targets: the joint loss's tables
    key, bias = torch.randn(m * k, d, generator=gen), torch.randn(m * k, 1, generator=gen)
    cache = _table_sums_cache(q, y, key, bias, m, k)
    torch.testing.assert_close(
        _table_sums_blocks(q, y, key, bias, m, k, elements=elements), cache, rtol=1e-5, atol=1e-4
    )


def test_cpu_chunks_do_not_change_the_queries():
    torch.manual_seed(6)
    model = Pancakes().eval()
    x = torch.rand(3, 3, 1, 32, 32)  # 9 images: chunks of 4, 4 and 1
    model.cpu_chunk = 0
    whole = model.queries(x)
    model.cpu_chunk = 4
    torch.testing.assert_close(model.queries(x), whole, rtol=1e-5, atol=1e-6)


def test_bf16_featurizer_trains_close_to_float32():
    from pancakes_model.training.trainer import featurizer_dtype

    assert featurizer_dtype("fp32", torch.device("cpu")) is None
    assert featurizer_dtype("bf16", torch.device("cpu")) is torch.bfloat16
    torch.manual_seed(7)
    model = Pancakes().train()
    x = torch.rand(1, 2, 1, 32, 32)
    y = (torch.rand(1, 2, 1, 32, 32) > 0.6).float()
    ref = winner_only_set_dice_loss(model, x, y, 3, 4).loss.item()
    model.featurizer_dtype = torch.bfloat16
    low = winner_only_set_dice_loss(model, x, y, 3, 4)
    assert low.loss.dtype == torch.float32
    assert low.loss.item() == pytest.approx(ref, abs=5e-3)


def test_a_label_a_protocol_does_not_offer_never_wins():
    torch.manual_seed(1)
    model = Pancakes(label_caps=(1, 2))
    g = torch.Generator().manual_seed(6)
    x = torch.rand(2, 2, 1, 32, 32, generator=g)
    y = (torch.rand(2, 2, 1, 32, 32, generator=g) > 0.7).float()
    y[1] = 0  # an empty target: a label that is never predicted would score a perfect 0
    res = winner_only_set_dice_loss(model, x, y, 3, 4)
    full = candidate_dice_losses(model(x, M=3, K=4), y)
    offered = torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    torch.testing.assert_close(res.table[:, offered], full[:, offered])
    assert torch.equal(res.table[:, ~offered], torch.full_like(res.table[:, ~offered], 2.0))
    for m, k in zip(res.protocol.tolist(), res.label.tolist()):
        assert offered[m, k]
    res.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
