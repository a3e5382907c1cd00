"""Safetensors weights with the architecture config and provenance in the file's metadata.

Never pickle: a ``.safetensors`` file holds only tensors and a string→string header, so loading a
file from anywhere cannot run code.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from pancakes_data import UserError
from pancakes_data.geometry import Preprocess
from pancakes_model.network.config import PancakesConfig

__all__ = [
    "DEFAULT_WEIGHTS",
    "FORMAT",
    "WeightsError",
    "WeightsNotFound",
    "load_weights",
    "read_metadata",
    "resolve",
    "save_weights",
    "sha256",
    "user_mode",
]

FORMAT = "pancakes-model/1"
DEFAULT_WEIGHTS = "pancakes-default.safetensors"


class WeightsError(UserError):
    """A weights file that is not a Pancakes model (the file and the reason are named)."""


class WeightsNotFound(WeightsError, FileNotFoundError):
    """No weights file at the given path."""


def resolve(path_or_name: str | Path) -> Path:
    """Map ``"default"`` to the weights shipped in the wheel; any other value is a file path."""
    if str(path_or_name) == "default":
        ref = resources.files("pancakes_model") / "weights" / DEFAULT_WEIGHTS
        path = Path(str(ref))
        if not path.is_file():
            raise WeightsNotFound(
                f"the default weights are missing from this install ({path}); "
                "reinstall pancakes-model or pass a weights file"
            )
        return path
    path = Path(path_or_name)
    if path.is_dir():
        raise WeightsError(f"--model {path} is a folder, not a weights file (.safetensors)")
    if not path.is_file():
        raise WeightsNotFound(f"weights file not found: {path}")
    return path


def sha256(path: str | Path) -> str:
    """SHA-256 of a weights file: the identity of a model (protocol numbers are defined by it)."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def user_mode(path: str | Path) -> None:
    """Give a file the mode the user's umask asks for (safetensors creates files 0600, which
    colleagues on a shared server cannot read)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def save_weights(model: torch.nn.Module, path: str | Path, *, provenance: dict[str, Any] | None = None) -> Path:
    """Write ``model``'s state dict and config to ``path`` atomically (temp file + rename)."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"weights must be saved as .safetensors, got {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    meta = {
        "format": FORMAT,
        "config": json.dumps(asdict(model.config), sort_keys=True),
        "provenance": json.dumps(provenance or {}, sort_keys=True, default=str),
    }
    meta["preprocess"] = json.dumps(model.preprocess.to_dict(), sort_keys=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata=meta)
    user_mode(tmp)
    tmp.replace(path)
    return path


def read_metadata(path_or_name: str | Path) -> dict[str, Any]:
    """Config and provenance of a weights file, decoded from JSON."""
    from safetensors import safe_open

    path = resolve(path_or_name)
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise WeightsError(f"{path} is not a readable safetensors file: {exc}") from exc
    if meta.get("format") != FORMAT:
        raise WeightsError(f"{path} is not a Pancakes weights file (format={meta.get('format')!r})")
    try:
        return {
            "config": json.loads(meta["config"]),
            "provenance": json.loads(meta.get("provenance", "{}")),
            "preprocess": json.loads(meta.get("preprocess", "{}")),
        }
    except (KeyError, json.JSONDecodeError) as exc:
        raise WeightsError(f"{path}: damaged Pancakes metadata ({exc})") from exc


def load_weights(cls, path_or_name: str | Path, *, map_location: str = "cpu"):
    """Build ``cls`` from the stored config and load the tensors, checking keys and shapes."""
    from safetensors.torch import load_file

    path = resolve(path_or_name)
    meta = read_metadata(path)
    try:
        config = PancakesConfig.from_dict(meta["config"])
    except (TypeError, ValueError) as exc:
        raise WeightsError(f"{path}: impossible model config: {exc}") from exc
    model = cls(config)
    state = load_file(str(path), device=map_location)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(state) & set(expected)
        if state[k].shape != expected[k].shape
    )
    if missing or unexpected or wrong:
        raise WeightsError(
            f"{path} does not match the Pancakes architecture: missing keys {missing}, "
            f"unexpected keys {unexpected}, shape mismatches {wrong}"
        )
    bad = sorted(k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all())
    if bad:
        raise WeightsError(f"{path}: weights contain NaN or inf in {bad[:5]}{' …' if len(bad) > 5 else ''}")
    try:  # files written before the preprocessing was recorded take the documented defaults
        preprocess = Preprocess.from_dict(meta["preprocess"])
    except (TypeError, ValueError) as exc:
        raise WeightsError(f"{path}: impossible preprocessing in the metadata: {exc}") from exc
    model.load_state_dict(state)
    model.provenance = meta["provenance"]
    model.preprocess = preprocess
    model.eval()
    return model.to(map_location)
