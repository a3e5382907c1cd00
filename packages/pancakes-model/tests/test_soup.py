from __future__ import annotations

import pytest
import torch

from pancakes_model import Pancakes, read_metadata
from pancakes_model.training.soup import average_weights, main, parse_ingredient


def _saved(tmp_path, name: str, seed: int, **config) -> tuple[Pancakes, str]:
    torch.manual_seed(seed)
    model = Pancakes(**config)
    stages = [{"steps": 10 * seed, "sets_seen": 40 * seed, "wall_time_s": 1.0 * seed}]
    path = model.save_pretrained(tmp_path / f"{name}.safetensors", provenance={"stages": stages * seed})
    return model, str(path)


def test_average_is_the_weighted_mean_of_every_parameter(tmp_path):
    a, pa = _saved(tmp_path, "a", 1)
    b, pb = _saved(tmp_path, "b", 2, label_caps=(2, 3))
    soup = average_weights([(pa, 1.0), (pb, 3.0)])  # normalised: 0.25 / 0.75
    sa, sb = a.state_dict(), b.state_dict()
    for key, value in soup.state_dict().items():
        assert torch.allclose(value, 0.25 * sa[key] + 0.75 * sb[key], atol=1e-6), key
    assert soup.config == a.config  # the first ingredient's config (no label caps here)
    history = soup.provenance["stages"]
    assert len(history) == 3  # b's two stages (the longer history) + the average
    assert history[-1]["steps"] == 0
    assert [i["weight"] for i in history[-1]["average"]] == [0.25, 0.75]
    assert soup.provenance["totals"]["steps"] == 40
    assert soup.provenance["steps"] == 0 and "average" in soup.provenance["hardware"]


def _stage(steps: int) -> dict:
    return {"steps": steps, "sets_seen": 4 * steps, "wall_time_s": 1.0}


def test_checkpoints_of_one_run_keep_the_history_that_covers_most_steps(tmp_path):
    torch.manual_seed(0)
    model = Pancakes()
    early = tmp_path / "early.safetensors"
    late = tmp_path / "late.safetensors"
    model.save_pretrained(early, provenance={"stages": [_stage(10), _stage(30)]})
    model.save_pretrained(late, provenance={"stages": [_stage(10), _stage(35)]})
    soup = average_weights([(str(early), 1.0), (str(late), 1.0)])
    assert [s["steps"] for s in soup.provenance["stages"]] == [10, 35, 0]
    assert soup.provenance["totals"]["steps"] == 45


def test_a_weight_of_zero_gives_the_other_model_exactly(tmp_path):
    a, pa = _saved(tmp_path, "a", 1)
    _, pb = _saved(tmp_path, "b", 2)
    soup = average_weights([(pa, 1.0), (pb, 0.0)])
    x = torch.rand(1, 2, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(soup(x, M=2, K=3), a.eval()(x, M=2, K=3))


def test_other_architectures_are_refused(tmp_path):
    _, pa = _saved(tmp_path, "a", 1)
    _, pb = _saved(tmp_path, "b", 2, sampler_dims=24)
    with pytest.raises(ValueError, match="another model config"):
        average_weights([(pa, 0.5), (pb, 0.5)])


def test_a_grown_set_context_run_averages_with_its_start(tmp_path):
    a, pa = _saved(tmp_path, "a", 1)
    torch.manual_seed(3)
    grown = a.grow_set_context(8)
    torch.nn.init.normal_(grown.context.mlp[-1].weight, std=0.1)
    pb = str(grown.save_pretrained(tmp_path / "grown.safetensors"))
    soup = average_weights([(pa, 0.5), (pb, 0.5)])
    assert soup.config.set_context == 8
    # the start contributes a zero last layer: the branch's weights are halved, the rest averaged
    last = "context.mlp.2.weight"
    torch.testing.assert_close(soup.state_dict()[last], 0.5 * grown.state_dict()[last])
    _, pc = _saved(tmp_path, "c", 2, set_context=4)
    with pytest.raises(ValueError, match="another model config"):
        average_weights([(pb, 0.5), (pc, 0.5)])
    # one that grew per-image inputs (2C = 64 more columns) averages with a start without them
    wide = grown.grow_per_image_context()
    torch.nn.init.normal_(wide.context.mlp[0].weight[:, 64:], std=0.1)
    pw = str(wide.save_pretrained(tmp_path / "wide.safetensors"))
    soup = average_weights([(pb, 0.5), (pw, 0.5)])
    assert soup.config.context_per_image
    first = soup.state_dict()["context.mlp.0.weight"]
    torch.testing.assert_close(first[:, :64], grown.state_dict()["context.mlp.0.weight"])
    torch.testing.assert_close(first[:, 64:], 0.5 * wide.state_dict()["context.mlp.0.weight"][:, 64:])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("w.safetensors:0.3", ("w.safetensors", 0.3)),
        ("w.safetensors", ("w.safetensors", 1.0)),
        ("default:2", ("default", 2.0)),
    ],
)
def test_ingredients_parse(text, expected):
    assert parse_ingredient(text) == expected


@pytest.mark.parametrize(("text", "problem"), [("w.safetensors:x", "must be a number"), ("w.safetensors:-1", "≥ 0")])
def test_bad_ingredient_weights_are_named(text, problem):
    with pytest.raises(ValueError, match=problem):
        parse_ingredient(text)


def test_cli_writes_a_loadable_file_and_never_overwrites(tmp_path, capsys):
    _, pa = _saved(tmp_path, "a", 1)
    _, pb = _saved(tmp_path, "b", 2)
    out = tmp_path / "soup.safetensors"
    assert main([f"{pa}:0.5", f"{pb}:0.5", "--out", str(out)]) == 0
    assert read_metadata(out)["provenance"]["stages"][-1]["init"] == "average"
    Pancakes.from_pretrained(out)
    before = out.read_bytes()
    assert main([pa, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exists" in err and str(out) in err
    assert out.read_bytes() == before
    assert main([f"{pa}:0", "--out", str(tmp_path / "zero.safetensors")]) == 2
    assert "sum to 0" in capsys.readouterr().err
