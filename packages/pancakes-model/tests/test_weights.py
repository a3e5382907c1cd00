from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from pancakes_model import Pancakes, read_metadata


def test_round_trip_is_bit_exact(tmp_path):
    torch.manual_seed(0)
    model = Pancakes(sampler_dims=24)
    path = model.save_pretrained(tmp_path / "w.safetensors", provenance={"steps": 3})
    loaded = Pancakes.from_pretrained(path)
    assert loaded.config == model.config
    for (ka, a), (kb, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert ka == kb
        assert torch.equal(a, b)
    x = torch.rand(1, 2, 1, 32, 32)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x, M=2, K=3), loaded(x, M=2, K=3))
    assert read_metadata(path)["provenance"] == {"steps": 3}
    assert not list(tmp_path.glob("*.tmp"))


def test_mismatched_keys_and_shapes_are_named(tmp_path):
    model = Pancakes()
    path = model.save_pretrained(tmp_path / "w.safetensors")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata()
        state = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 - safe_open is not iterable
    state.pop("sampler.query.0.weight")
    state["sampler.key.0.bias"] = torch.zeros(3)
    state["extra.weight"] = torch.zeros(1)
    bad = tmp_path / "bad.safetensors"
    save_file(state, str(bad), metadata=meta)
    with pytest.raises(
        ValueError, match=r"missing keys \['sampler.query.0.weight'\].*extra.weight.*sampler.key.0.bias"
    ):
        Pancakes.from_pretrained(bad)


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        Pancakes.from_pretrained(tmp_path / "nope.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 20)
    with pytest.raises(ValueError, match="not a readable safetensors"):
        Pancakes.from_pretrained(junk)
    plain = tmp_path / "plain.safetensors"
    save_file({"a": torch.zeros(1)}, str(plain))
    with pytest.raises(ValueError, match="not a Pancakes weights file"):
        Pancakes.from_pretrained(plain)
    with pytest.raises(ValueError, match=r"\.safetensors"):
        Pancakes().save_pretrained(tmp_path / "w.pt")
