"""The set-context branch: images of a set see one summary of the set (network/context.py)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image

from pancakes_model import Pancakes, segment
from pancakes_model.app.cli import main
from pancakes_model.network.config import PancakesConfig


def _context_model(seed: int = 0, hidden: int = 16, per_image: bool = False) -> Pancakes:
    """Trained features (the shipped weights' UNet) with a fresh branch that is not the identity
    (grown, it starts at zero). A random UNet's bottleneck barely depends on its input, so its set
    summary would not either. ``per_image``: the branch also sees each image, with non-zero weights."""
    torch.manual_seed(seed)
    shipped = Pancakes.from_pretrained("default")
    plain = Pancakes(dataclasses.replace(shipped.config, set_context=0, context_per_image=False))
    plain.load_state_dict({k: v for k, v in shipped.state_dict().items() if not k.startswith("context.")})
    plain.preprocess = shipped.preprocess
    model = plain.grow_set_context(hidden).eval()
    torch.nn.init.normal_(model.context.mlp[-1].weight, std=0.3)
    if per_image:
        model = model.grow_per_image_context().eval()
        torch.nn.init.normal_(model.context.mlp[0].weight[:, 4 * 16 :], std=0.3)  # the per-image inputs (C = 32)
    return model


def _images(b=1, s=3, seed=0):
    return torch.rand(b, s, 1, 32, 32, generator=torch.Generator().manual_seed(seed))


def test_a_grown_branch_starts_as_the_model_it_grows_from():
    torch.manual_seed(0)
    base = Pancakes(features=8, sampler_dims=8).eval()
    grown = base.grow_set_context(16)
    assert grown.config.set_context == 16 and base.context is None
    x = _images(2, 3)
    with torch.no_grad():
        assert torch.equal(base.factors(x, 3, 4).logits(), grown.factors(x, 3, 4).logits())
    with pytest.raises(ValueError, match="already has"):
        grown.grow_set_context(8)


@pytest.mark.parametrize("per_image", [False, True])
def test_the_set_summary_streams_image_by_image(per_image):
    model = _context_model(per_image=per_image)
    x = _images(1, 5)
    with torch.no_grad():
        whole = model.queries(x)
        summary = model.set_summary(x).mean(1)  # (1, 2C)
        parts = torch.cat([model.queries(x[:, :2], summary), model.queries(x[:, 2:], summary)])
    torch.testing.assert_close(parts, whole, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="shape"):
        model.queries(x, summary[:, :3])


@pytest.mark.parametrize("per_image", [False, True])
def test_images_of_a_set_see_each_other_and_the_order_does_not_matter(per_image):
    model = _context_model(per_image=per_image)
    x = _images(1, 3)
    with torch.no_grad():
        q = model.queries(x)
        perm = torch.tensor([2, 0, 1])
        torch.testing.assert_close(model.queries(x[:, perm]), q[perm], rtol=1e-5, atol=1e-6)
        other = x.clone()
        other[0, 2] *= 0.1  # change only the third image
        assert not torch.allclose(model.queries(other)[0], q[0], atol=1e-4)
        alone = model.queries(x[:, :1])  # a set of one: its own summary
        assert not torch.allclose(alone[0], q[0], atol=1e-4)
    plain = Pancakes(features=8, sampler_dims=8)
    with pytest.raises(ValueError, match="no set-context branch"):
        plain.queries(x, torch.zeros(1, 2 * plain.config.features))


def test_the_branch_learns_from_zero():
    torch.manual_seed(0)
    model = Pancakes(features=8, sampler_dims=8).grow_set_context(16).train()
    loss = model.factors(_images(2, 3), 3, 4).logits().square().mean()
    loss.backward()
    assert model.context.mlp[-1].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("per_image", [False, True])
def test_weights_round_trip_and_config_checks(tmp_path, per_image):
    model = _context_model(per_image=per_image)
    path = model.save_pretrained(tmp_path / "ctx.safetensors")
    loaded = Pancakes.from_pretrained(path)
    assert loaded.config.set_context == 16 and loaded.config.context_per_image == per_image
    x = _images(1, 3)
    with torch.no_grad():
        assert torch.equal(loaded.factors(x, 2, 3).labels(), model.factors(x, 2, 3).labels())
    for bad in (-1, True, 2.5, 10**6):
        with pytest.raises(ValueError, match="set_context"):
            PancakesConfig(set_context=bad)
    with pytest.raises(ValueError, match="context_per_image"):
        PancakesConfig(context_per_image="yes", set_context=8)
    with pytest.raises(ValueError, match="needs a set-context branch"):
        PancakesConfig(context_per_image=True)


def test_per_image_inputs_grow_at_zero_and_leave_a_set_of_one_as_the_shared_branch_does():
    shared = _context_model()
    grown = shared.grow_per_image_context().eval()
    assert grown.config.context_per_image and not shared.config.context_per_image
    x = _images(1, 4)
    with torch.no_grad():
        assert torch.equal(grown.factors(x, 3, 5).labels(), shared.factors(x, 3, 5).labels())
        torch.nn.init.normal_(grown.context.mlp[0].weight[:, 2 * grown.config.features :], std=0.3)  # per-image part
        # one image is its own set: its difference from the set is zero, whatever those weights are
        torch.testing.assert_close(grown.queries(x[:, :1]), shared.queries(x[:, :1]), rtol=1e-4, atol=1e-5)
        # in a set of four each image is modulated by how it differs from the others
        assert not torch.allclose(grown.queries(x), shared.queries(x), atol=1e-3)
    with pytest.raises(ValueError, match="already sees each image"):
        grown.grow_per_image_context()
    with pytest.raises(ValueError, match="no set-context branch"):
        Pancakes(features=8, sampler_dims=8).grow_per_image_context()


@pytest.fixture
def pngs(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        yy, xx = np.indices((48, 40))
        disk = (yy - 24) ** 2 + (xx - 20) ** 2 < (8 + 3 * i) ** 2
        img = 0.2 + (0.3 + 0.2 * i) * disk + rng.normal(0, 0.03, (48, 40))
        Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(d / f"img{i}.png")
    return d


def _labels(folder, stem, m):
    with Image.open(folder / "labels" / f"{stem}_m{m:02d}.png") as im:
        return np.asarray(im)


def test_segment_and_match_use_the_whole_set_s_summary(pngs, tmp_path):
    weights = _context_model().save_pretrained(tmp_path / "ctx.safetensors")
    out = tmp_path / "out"
    base = ["-M", "3", "-K", "4", "--model", str(weights), "--quiet"]
    assert main(["segment", str(pngs), "--out", str(out), *base]) == 0
    meta = json.loads((out / "run.json").read_text())
    assert len(meta["set_context"]) == 2 * Pancakes.from_pretrained(weights).config.features  # mean and spread
    # the Python API segments the same set with the same summary
    arrays = [np.asarray(Image.open(pngs / f"img{i}.png"), np.float32) for i in range(3)]
    api = segment(arrays, 3, 4, model=Pancakes.from_pretrained(weights))
    for i in range(3):
        for m in range(3):
            np.testing.assert_array_equal(_labels(out, f"img{i}", m), api[i][m])
    # one input on its own is another set; --like makes it a member of the earlier one
    single = tmp_path / "single"
    single.mkdir()
    (single / "img1.png").write_bytes((pngs / "img1.png").read_bytes())
    assert main(["segment", str(single), "--out", str(tmp_path / "alone"), *base]) == 0
    assert json.loads((tmp_path / "alone" / "run.json").read_text())["set_context"] != meta["set_context"]
    assert main(["segment", str(single), "--out", str(tmp_path / "like"), "--like", str(out), *base]) == 0
    assert json.loads((tmp_path / "like" / "run.json").read_text())["set_context"] == meta["set_context"]
    for m in range(3):
        np.testing.assert_array_equal(_labels(tmp_path / "like", "img1", m), _labels(out, "img1", m))
    # match ranks its example as a member of the collection: a label of the run is found exactly
    lab = _labels(out, "img0", 1)
    k = int(np.bincount(lab.ravel()).argmax())
    Image.fromarray(((lab == k) * 255).astype(np.uint8)).save(tmp_path / "mask.png")
    args = ["match", str(pngs), "--example", str(pngs / "img0.png"), "--mask", str(tmp_path / "mask.png")]
    assert main([*args, "--out", str(tmp_path / "match"), *base]) == 0
    choice = json.loads((tmp_path / "match" / "match.json").read_text())
    assert choice["score"] == pytest.approx(1.0)
    assert json.loads((tmp_path / "match" / "run.json").read_text())["set_context"] == meta["set_context"]


def test_a_corrupt_like_summary_is_refused(pngs, tmp_path, capsys):
    weights = _context_model().save_pretrained(tmp_path / "ctx.safetensors")
    base = ["-M", "2", "-K", "3", "--model", str(weights), "--quiet"]
    assert main(["segment", str(pngs), "--out", str(tmp_path / "a"), *base]) == 0
    run = tmp_path / "a" / "run.json"
    meta = json.loads(run.read_text())
    meta["set_context"] = meta["set_context"][:3]
    run.write_text(json.dumps(meta))
    assert main(["segment", str(pngs), "--out", str(tmp_path / "b"), "--like", str(tmp_path / "a"), *base]) == 2
    assert "set_context" in capsys.readouterr().err


def test_the_branch_can_learn_at_its_own_rate():
    from types import SimpleNamespace

    from pancakes_model.training.config import ConfigError, TrainSection, _check, load_config
    from pancakes_model.training.trainer import Trainer

    model = _context_model()
    t = TrainSection(lr=1e-4, context_lr_scale=10.0)
    groups = Trainer._param_groups(SimpleNamespace(model=model), t)
    assert len(groups) == 2 and groups[1]["lr"] == pytest.approx(1e-3)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in model.context.parameters()}
    # the default keeps one group, so checkpoints of earlier runs resume
    assert len(Trainer._param_groups(SimpleNamespace(model=model), TrainSection())) == 1
    with pytest.raises(ConfigError, match="context_lr_scale"):
        _check(dataclasses.replace(load_config(None), train=TrainSection(context_lr_scale=0.0)))


@pytest.mark.parametrize("flat", [False, True])
def test_a_run_whose_branch_has_its_own_rate_resumes_with_each_moment_on_its_parameter(tmp_path, flat):
    # Two groups number the parameters group by group, not in model order: a resume that read them
    # in model order refused the checkpoint (stage 17's first resume) or could misplace the moments.
    from types import SimpleNamespace

    from pancakes_model.training import checkpoint
    from pancakes_model.training.config import ConfigError, TrainSection
    from pancakes_model.training.trainer import Trainer

    def build(scale):
        torch.manual_seed(0)
        model = Pancakes(features=8, sampler_dims=8).grow_set_context(8)
        groups = Trainer._param_groups(SimpleNamespace(model=model), TrainSection(lr=1e-3, context_lr_scale=scale))
        return model, torch.optim.AdamW(groups, lr=1e-3)

    model, opt = build(10.0)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    opt.step()
    where = checkpoint.save(tmp_path, step=1, model=model, optimizer=opt, state={}, provenance={}, flat=flat)
    again, opt2 = build(10.0)
    checkpoint.load(where, model=again, optimizer=opt2, device=torch.device("cpu"))
    assert [g["lr"] for g in opt2.param_groups] == pytest.approx([1e-3, 1e-2])
    for (name, p), q in zip(model.named_parameters(), again.parameters(), strict=True):
        assert torch.equal(opt.state[p]["exp_avg"], opt2.state[q]["exp_avg"]), name
    _, one_group = build(1.0)
    with pytest.raises(ConfigError, match="optimizer group"):
        checkpoint.load(where, model=build(1.0)[0], optimizer=one_group, device=torch.device("cpu"))
