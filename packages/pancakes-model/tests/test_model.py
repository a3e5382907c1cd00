from __future__ import annotations

import pytest
import torch

from pancakes_model import Pancakes, PancakesConfig, ProtocolEmbedding


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return Pancakes().eval()


def images(b=1, s=2, h=32, w=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, s, 1, h, w, generator=g)


@pytest.mark.parametrize(("b", "s", "m", "k"), [(1, 1, 1, 1), (2, 3, 4, 5), (1, 5, 15, 40), (3, 2, 8, 20)])
def test_shapes_and_partition(model, b, s, m, k):
    x = images(b, s)
    with torch.no_grad():
        p = model(x, M=m, K=k)
        lab = model.predict_labels(x, M=m, K=k)
    assert p.shape == (b, s, m, k, 32, 48)
    assert torch.isfinite(p).all()
    torch.testing.assert_close(p.sum(dim=3), torch.ones(b, s, m, 32, 48))
    assert lab.shape == (b, s, m, 32, 48)
    assert lab.dtype == torch.int64
    assert int(lab.max()) < k


def test_logits_option_and_determinism(model):
    x = images()
    with torch.no_grad():
        a = model(x, M=3, K=4, logits=True)
        b = model(x, M=3, K=4, logits=True)
        p = model(x, M=3, K=4)
    assert torch.equal(a, b)
    torch.testing.assert_close(a.softmax(dim=3), p)
    bound = model.config.temperature + model.config.bias_bound
    assert a.abs().max() <= bound + 1e-4


def test_parameter_count_is_paper_sized(model):
    assert 180_000 < model.num_parameters() < 260_000


def test_gradients_reach_featurizer_and_sampler():
    torch.manual_seed(1)
    model = Pancakes()
    p = model(images(), M=2, K=3)
    p[:, :, 0, 1].mean().backward()
    for name in ("featurizer", "sampler"):
        grads = [q.grad for q in getattr(model, name).parameters()]
        assert all(g is not None for g in grads), name
        assert sum(float(g.abs().sum()) for g in grads) > 0, name


def test_embedding_is_non_degenerate_and_valid_for_one():
    emb = ProtocolEmbedding(dims=12)
    v = emb(1, 1)
    assert v.shape == (1, 1, 24)
    assert torch.isfinite(v).all()
    u = emb.encode(20)  # (20, 12)
    # No column is the negative (or copy) of another: the official form had cos/-cos pairs.
    corr = torch.corrcoef(u.T)
    off = corr - torch.diag(torch.diag(corr))
    assert off.abs().max() < 0.999
    assert torch.linalg.matrix_rank(u) == 12


def test_sampler_fast_path_equals_concat_form_float64():
    torch.manual_seed(3)
    model = Pancakes(sampler_dims=16, sampler_hidden=24).double()
    for prm in model.sampler.parameters():  # non-trivial random weights
        torch.nn.init.normal_(prm, std=0.5)
    phi = torch.randn(3, 32, 16, 24, dtype=torch.float64)
    v = model.embedding.double()(5, 7).double()
    fast = model.sampler(phi, v)
    slow = model.sampler.forward_concat(phi, v)
    torch.testing.assert_close(fast, slow, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"M": 0}, "M must be >= 1, got 0"),
        ({"K": 0}, "K must be >= 1, got 0"),
        ({"K": 2.5}, "K must be an integer"),
    ],
)
def test_bad_m_k(model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        model(images(), **{"M": 2, "K": 3, **kwargs})


def test_bad_images(model):
    with pytest.raises(ValueError, match=r"\(B, S, C, H, W\), got \(2, 1, 32, 32\)"):
        model(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match="multiples of 16, got H=30, W=32"):
        model(torch.rand(1, 1, 1, 30, 32))
    x = images()
    x[0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        model(x)
    with pytest.raises(ValueError, match="C=3"):
        model(torch.rand(1, 1, 3, 32, 32))
    with pytest.raises(ValueError, match="unknown Pancakes config keys"):
        PancakesConfig.from_dict({"features": 32, "bogus": 1})


def test_train_and_eval_layouts_give_the_same_function():
    torch.manual_seed(2)
    model = Pancakes()
    params = [id(p) for p in model.parameters()]
    x = images()
    with torch.no_grad():
        a = model.train()(x, M=2, K=3, logits=True)
        b = model.eval()(x, M=2, K=3, logits=True)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert [id(p) for p in model.parameters()] == params


def test_logit_factors_reproduce_the_logits_for_all_one_and_per_image_protocols(model):
    x = images(b=1, s=3)
    with torch.no_grad():
        f = model.factors(x, 3, 5)
        ref = model(x, 3, 5, logits=True)[0]  # (S, M, K, H, W)
        rebuilt = torch.einsum("ndhw,mkd->nmkhw", f.q, f.key) + f.bias[..., None, None]
        torch.testing.assert_close(rebuilt, ref, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(f.logits(2), ref[:, 2], atol=1e-5, rtol=1e-5)
        per = torch.tensor([0, 2, 1])
        torch.testing.assert_close(f.logits(per), ref[torch.arange(3), per], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(f.probs(per).sum(1), torch.ones(3, 32, 48))
    assert f.shape == (3, 5)


def test_memory_format_is_an_explicit_setting_not_a_side_effect():
    torch.manual_seed(4)
    m = Pancakes()
    assert m.eval().memory_format == "channels_last"  # the default since issue 22 (faster on CPUs)
    x = images()
    with torch.no_grad():
        a = m(x, M=2, K=3, logits=True)
        b = m.set_memory_format("contiguous")(x, M=2, K=3, logits=True)
    assert m.train().memory_format == "contiguous"
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="memory format must be one of"):
        m.set_memory_format("strided")


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ({"features": -4}, "features must be a positive integer"),
        ({"features": 10**9}, "beyond any Pancakes model"),
        ({"label_caps": [2, 0]}, r"label_caps entries must be integers in \[1, 4096\], got 0"),
        ({"label_caps": "23"}, "label_caps must be a list"),
    ],
)
def test_impossible_configs_are_refused_before_allocating(override, match):
    with pytest.raises(ValueError, match=match):
        PancakesConfig(**override)


def test_label_caps_make_coarse_protocols_and_leave_the_others_unchanged(tmp_path):
    torch.manual_seed(5)
    capped = Pancakes(label_caps=[2, 3]).eval()  # a list, as JSON gives it
    plain = Pancakes().eval()
    plain.load_state_dict(capped.state_dict())  # the caps hold no weights
    assert capped.config.label_caps == (2, 3)
    assert capped.config.label_counts(4, 5) == (2, 3, 5, 5)
    assert capped.config.label_counts(1, 1) == (1,)
    x = images(1, 2)
    with torch.no_grad():
        p, ref = capped(x, M=4, K=5), plain(x, M=4, K=5)
        lab = capped.predict_labels(x, M=4, K=5)
    torch.testing.assert_close(p.sum(dim=3), torch.ones(1, 2, 4, 32, 48))
    assert torch.equal(p[:, :, 0, 2:], torch.zeros_like(p[:, :, 0, 2:]))  # exactly zero, not small
    assert torch.equal(p[:, :, 1, 3:], torch.zeros_like(p[:, :, 1, 3:]))
    assert int(lab[:, :, 0].max()) <= 1 and int(lab[:, :, 1].max()) <= 2
    torch.testing.assert_close(p[:, :, 2:], ref[:, :, 2:])  # uncapped protocols: the same function
    assert torch.equal(lab[:, :, 2:], plain.predict_labels(x, M=4, K=5)[:, :, 2:])
    # protocol 0 with its cap of 2 is what a 2-label protocol of the plain model is
    with torch.no_grad():
        two = plain(x, M=4, K=2)
    torch.testing.assert_close(p[:, :, 0, :2], two[:, :, 0])
    loaded = Pancakes.from_pretrained(capped.save_pretrained(tmp_path / "capped.safetensors"))
    assert loaded.config.label_caps == (2, 3)


def test_embedding_counts_place_each_protocols_labels_over_the_whole_range():
    emb = ProtocolEmbedding(dims=4)
    v = emb(3, 5, [2, 5, 1])
    assert v.shape == (3, 5, 8)
    torch.testing.assert_close(v[0, :2, 4:], emb.encode(2))
    assert torch.equal(v[0, 2:, 4:], torch.zeros(3, 4))
    torch.testing.assert_close(v[1, :, 4:], emb.encode(5))
    torch.testing.assert_close(v[2, :1, 4:], emb.encode(1))
    torch.testing.assert_close(v[:, :, :4], emb(3, 5)[:, :, :4])
    with pytest.raises(ValueError, match=r"counts must hold M=3 label counts in \[1, K=5\]"):
        emb(3, 5, [2, 6, 1])


@pytest.mark.parametrize("elements", [1 << 26, 3 * 4 * 5 * 300])  # one block; image and pixel slices
def test_accelerator_label_blocks_equal_the_cpu_labels(model, elements):
    from einops import rearrange

    x = images(2, 3, seed=4)
    with torch.no_grad():
        f = model.factors(x, 4, 5)
        flat_q = rearrange(f.q, "N D H W -> N D (H W)")
        keys, bias = rearrange(f.key, "M K D -> (K M) D"), rearrange(f.bias, "M K -> (K M) 1")
        blocks = f._labels_blocks(flat_q, keys, bias, torch.uint8, elements=elements)
    assert torch.equal(blocks.view(6, 4, 32, 48), f.labels())
