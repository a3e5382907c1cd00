"""Direct tests of the schedule, the curriculum, the baselines, the overview grid and the M × K grid."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pancakes_model.network import Pancakes
from pancakes_model.render import PALETTE, colour_labels, grid_tile_origin, palette, protocol_grid
from pancakes_model.training.baselines import felzenszwalb_protocols, kmeans_protocols
from pancakes_model.training.config import TrainSection, load_config
from pancakes_model.training.data import sampler_config
from pancakes_model.training.schedule import lr_factor, make_scheduler, size_at
from pancakes_model.training.validation import predict_label_grid, predict_labels


def test_lr_warms_up_then_decays_to_the_floor_and_lambdalr_follows():
    t = TrainSection(steps=100, warmup=10, min_lr_ratio=0.1, lr=1.0)
    assert lr_factor(0, t) == pytest.approx(0.1) and lr_factor(9, t) == pytest.approx(1.0)
    assert lr_factor(10, t) == pytest.approx(1.0)
    assert lr_factor(55, t) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_factor(100, t) == pytest.approx(0.1) and lr_factor(500, t) == pytest.approx(0.1)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0)
    sched = make_scheduler(opt, t)
    seen = []
    for _ in range(12):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([2.0 * lr_factor(i, t) for i in range(12)])


def test_decay_start_holds_the_rate_then_cools_down_to_the_floor():
    t = TrainSection(steps=100, warmup=10, min_lr_ratio=0.0, lr=1.0, decay_start=60)
    assert [lr_factor(s, t) for s in (10, 59, 60)] == pytest.approx([1.0, 1.0, 1.0])
    assert lr_factor(80, t) == pytest.approx(0.5) and lr_factor(100, t) == pytest.approx(0.0)
    early = TrainSection(steps=100, warmup=10, decay_start=5)  # inside the warm-up: the plain schedule
    plain = TrainSection(steps=100, warmup=10)
    assert [lr_factor(s, early) for s in range(100)] == [lr_factor(s, plain) for s in range(100)]


def test_curriculum_sizes():
    t = TrainSection(steps=100, curriculum=((0.6, 64), (1.0, 128)))
    assert [size_at(s, t) for s in (0, 59, 60, 99, 150)] == [64, 64, 128, 128, 128]
    assert size_at(5, TrainSection(curriculum=())) == 128


def test_kmeans_baseline_recovers_intensity_classes_consistently():
    rng = np.random.default_rng(0)
    imgs = np.where(rng.random((3, 32, 32)) < 0.3, 0.8, 0.2) + rng.normal(0, 0.02, (3, 32, 32))
    out = kmeans_protocols(np.clip(imgs, 0, 1), M=4, K=5)
    assert out.shape == (3, 4, 32, 32) and out.max() < 5
    two = out[:, 0]  # the first protocol has 2 clusters: bright is label 1 in every image
    np.testing.assert_array_equal(two == 1, imgs > 0.5)


def test_felzenszwalb_baseline_respects_the_label_budget():
    pytest.importorskip("skimage")
    imgs = np.random.default_rng(1).random((2, 40, 40))
    out = felzenszwalb_protocols(imgs, M=3, K=6)
    assert out.shape == (2, 3, 40, 40) and out.max() <= 5


def test_protocol_grid_places_tiles_where_the_report_expects_them():
    images = [np.zeros((20, 30)), np.ones((50, 50))]
    labels = [[np.zeros((20, 30), int), np.ones((20, 30), int)], [np.zeros((50, 50), int)] * 2]
    grid = protocol_grid(images, labels, titles=["a", "b"])
    w, h = grid_tile_origin(2, 3)
    assert grid.shape == (h, w, 3)
    x, y = grid_tile_origin(1, 0)
    assert (grid[y + 64, x + 64] == 255).all()  # image b, white, fills its tile
    x, y = grid_tile_origin(0, 2)  # protocol 1 of image a: label 1's colour blended over black
    expected = (palette(2)[1] * 0.45).astype(np.uint8)
    np.testing.assert_allclose(grid[y + 64, x + 64], expected, atol=2)
    assert (palette(10)[:4] == palette(4)).all()  # one colour per label whatever K is


def test_label_colours_come_from_the_palette_and_wrap_past_its_end():
    labels = np.array([[0, 1], [2, len(PALETTE) + 1]])
    rgb = colour_labels(labels)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[0], palette(2))
    np.testing.assert_array_equal(rgb[1, 1], rgb[0, 1])  # label 4097 wraps to label 1


def test_one_label_reader_serves_every_package(tmp_path):
    """pancakes-data and pancakes-synth read label maps through pancakes-eval's reader (issue 21)."""
    import nibabel as nib
    from PIL import Image

    from pancakes_data.io import read_labels
    from pancakes_eval.io import read_label_image

    lab = np.random.default_rng(0).integers(0, 7, (12, 9, 5)).astype(np.int16)
    nib.save(nib.Nifti1Image(lab, np.diag([0.5, 0.7, 2.0, 1.0])), tmp_path / "l.nii.gz")
    ours, spacing = read_label_image(tmp_path / "l.nii.gz")
    np.testing.assert_array_equal(ours, lab)
    assert tuple(spacing) == pytest.approx((0.5, 0.7, 2.0))
    Image.fromarray(lab[:, :, 0].astype(np.uint8)).save(tmp_path / "l.png")
    np.testing.assert_array_equal(read_label_image(tmp_path / "l.png")[0], read_labels(tmp_path / "l.png").data)
    nib.save(nib.Nifti1Image(lab.astype(np.float32) / 2, np.eye(4)), tmp_path / "half.nii.gz")
    with pytest.raises(ValueError, match=r"half.nii.gz: labels must be integers, found value \d+\.5"):
        read_label_image(tmp_path / "half.nii.gz")


def _tiny_model_and_optimizer(seed: int):
    from pancakes_model import Pancakes
    from pancakes_model.network import PancakesConfig

    torch.manual_seed(seed)
    model = Pancakes(PancakesConfig(features=4, levels=2, sampler_dims=4, sampler_hidden=8))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.rand(1, 2, 1, 16, 16), 2, 3).sum().backward()
    opt.step()
    return model, opt


def test_a_flat_checkpoint_is_one_file_that_restores_weights_optimizer_and_rng(tmp_path):
    from pancakes_model.training import checkpoint

    model, opt = _tiny_model_and_optimizer(0)
    state = {"best": 0.5, "elapsed": 1.0, "scheduler": {}}
    checkpoint.save(tmp_path, step=3, model=model, optimizer=opt, state=state, provenance={}, flat=True)
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.safetensors"]
    expected_rng = torch.rand(3)
    other, other_opt = _tiny_model_and_optimizer(1)
    cpu = torch.device("cpu")
    restored = checkpoint.load(checkpoint.latest(tmp_path), model=other, optimizer=other_opt, device=cpu)
    assert restored["step"] == 3 and restored["best"] == 0.5
    for a, b in zip(model.state_dict().values(), other.state_dict().values()):
        assert torch.equal(a, b)
    p0, p1 = next(iter(model.parameters())), next(iter(other.parameters()))
    assert torch.equal(opt.state[p0]["exp_avg"], other_opt.state[p1]["exp_avg"])
    assert torch.equal(torch.rand(3), expected_rng)  # the RNG continues where the checkpoint was taken
    # a newer folder checkpoint wins over an older flat one, and a damaged flat file is passed over
    checkpoint.save(tmp_path, step=5, model=model, optimizer=opt, state=state, provenance={})
    assert checkpoint.latest(tmp_path).name == "step-00000005"
    (tmp_path / "checkpoints" / "step-00000005" / "state.json").unlink()
    (tmp_path / "checkpoint.safetensors").write_bytes(b"cut off")
    assert checkpoint.latest(tmp_path) is None


def test_the_report_states_the_set_size_bar_per_family():
    from pancakes_model.training.report import render_markdown

    def entry(mean: float) -> dict:
        cell = {"mean": mean, "low": mean - 0.01, "high": mean + 0.01, "n_finite": 4}
        return {"set_dice": cell, "set_iou": cell, "set_hd95": cell}

    sources = {
        "steady": {"1": {"pancakes": entry(0.80)}, "5": {"pancakes": entry(0.79)}},
        "drifts": {"1": {"pancakes": entry(0.80)}, "5": {"pancakes": entry(0.74)}},
        "one-size": {"3": {"pancakes": entry(0.50)}},
        "edge": {"1": {"pancakes": entry(0.928)}, "5": {"pancakes": entry(0.8975)}},
    }
    text = render_markdown({"n_sets": 4, "M": 8, "K": 20, "sources": sources})
    assert "S=5 − S=1 (Pancakes Set Dice): -0.0100 (within 0.03)" in text
    assert "S=5 − S=1 (Pancakes Set Dice): -0.0600 (NOT within 0.03)" in text
    # a drift just past the bar must not print as the bar itself
    assert "S=5 − S=1 (Pancakes Set Dice): -0.0305 (NOT within 0.03)" in text
    assert text.count("S=5 − S=1") == 3


def test_the_m_k_grid_from_one_featurizer_pass_equals_one_prediction_per_shape():
    torch.manual_seed(0)
    model = Pancakes(label_caps=[2, 3]).eval()  # capped protocols must stay capped at every K
    images = np.random.default_rng(0).random((3, 32, 32), dtype=np.float32)
    shapes = [(1, 2), (2, 5), (4, 3), (5, 9)]
    grid = predict_label_grid(model, images, shapes)
    assert list(grid) == shapes
    for m, k in shapes:
        np.testing.assert_array_equal(grid[m, k], predict_labels(model, images, m, k))
    assert grid[5, 9][:, 0].max() <= 1 and grid[5, 9][:, 1].max() <= 2 and grid[5, 9][:, 2:].max() > 2


def test_the_report_refuses_a_missing_or_malformed_results_file_in_one_line(tmp_path, capsys):
    from pancakes_model.training.report import main

    (tmp_path / "list.json").write_text("[1, 2]")
    assert main(["--reference", str(tmp_path / "list.json"), f"a={tmp_path / 'list.json'}"]) == 2
    assert capsys.readouterr().err.strip().endswith("is not a results.json of `pancakes evaluate` (a list)")
    assert main(["--reference", str(tmp_path / "list.json"), f"a={tmp_path / 'missing.json'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("report: error: cannot read results") and "missing.json" in err and "\n" not in err
    assert main(["--reference", str(tmp_path / "list.json"), "no-separator"]) == 2
    assert "NAME=results.json" in capsys.readouterr().err


def test_the_report_refuses_a_card_without_the_named_block(tmp_path, capsys):
    from pancakes_model.training.report import main

    dice = {"mean": 0.5, "values": [0.4, 0.5, 0.6]}
    results = {"sources": {"spots": {"3": {"pancakes": {"set_dice": dice}}}}}
    (tmp_path / "r.json").write_text(json.dumps(results))
    card = tmp_path / "CARD.md"
    card.write_text("no block here\n")
    code = main(["--reference", str(tmp_path / "r.json"), f"a={tmp_path / 'r.json'}", "--write", str(card)])
    assert code == 2
    assert "has no <!-- candidates:start -->" in capsys.readouterr().err
    assert card.read_text() == "no block here\n"


def test_intensity_flip_reaches_the_sampler():
    """``data.intensity_flip`` (default: the paper's per image) is what the set sampler is given."""
    assert sampler_config(load_config(None, [])).intensity_flip == "image"
    assert sampler_config(load_config(None, ['data.intensity_flip="set"'])).intensity_flip == "set"
    with pytest.raises(ValueError, match="data.intensity_flip must be 'image' or 'set', got 'slice'"):
        load_config(None, ['data.intensity_flip="slice"'])


def test_a_source_can_keep_its_own_intensity_flip(tmp_path):
    """``data.sources[].intensity_flip`` overrides ``data.intensity_flip`` for that source only,
    on either augmentation route."""
    body = 'data.intensity_flip = "set"\n[[data.sources]]\nspec = "procedural"\nintensity_flip = "image"\n'
    body += '[[data.sources]]\nspec = "scenes:regions"\n'
    (tmp_path / "a.toml").write_text(body)
    cfg = load_config(tmp_path / "a.toml")
    assert [s.intensity_flip for s in cfg.data.sources] == ["image", ""]
    on_device = sampler_config(load_config(tmp_path / "a.toml", ['data.augment_on="device"']))
    assert on_device.defer_augmentation and on_device.intensity_flip == "set"
    (tmp_path / "b.toml").write_text(body.replace('intensity_flip = "image"', 'intensity_flip = "pixel"'))
    with pytest.raises(ValueError, match=r"data.sources \(procedural\): intensity_flip must be .*got 'pixel'"):
        load_config(tmp_path / "b.toml")


def test_the_stage_rule_pools_the_first_sets_of_each_family_and_bounds_each_on_all_of_its_own():
    """A family scored on more sets (its own ``sets``) sharpens its own bound without weighing more
    in the pooled difference."""
    from pancakes_model.training.stagerule import compare_models, paired

    rng = np.random.default_rng(0)

    def results(values: dict) -> dict:
        return {
            "n_sets": 4,
            "sources": {f: {"3": {"pancakes": {"set_dice": {"values": list(v)}}}} for f, v in values.items()},
        }

    old = {"a": rng.uniform(0, 1, 4), "b": rng.uniform(0, 1, 12)}
    step = rng.normal(0, 0.01, 12)  # differences that vary, as between two models
    new = {"a": old["a"] + 0.05 + step[:4], "b": old["b"] + step - np.r_[np.zeros(4), np.full(8, 0.5)]}
    out = compare_models(results(new), results(old), seed=0)
    assert out["families"]["b"]["n"] == 12
    assert out["families"]["b"]["mean"] == pytest.approx(np.mean(new["b"] - old["b"]))
    pooled = paired(np.r_[new["a"], new["b"][:4]], np.r_[old["a"], old["b"][:4]], 0)
    assert out["pooled"]["n"] == 8 and out["pooled"]["mean"] == pytest.approx(pooled["mean"])
    assert out["pooled"]["mean"] > 0 and not out["accept"]  # b's own sets fail its bound
