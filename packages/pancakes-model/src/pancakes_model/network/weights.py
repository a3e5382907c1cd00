"""Safetensors weights with the architecture config and provenance in the file's metadata.

Never pickle: a ``.safetensors`` file holds only tensors and a string→string header, so loading a
file from anywhere cannot run code.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from pancakes_model.network.config import PancakesConfig

__all__ = ["DEFAULT_WEIGHTS", "FORMAT", "load_weights", "read_metadata", "resolve", "save_weights", "user_mode"]

FORMAT = "pancakes-model/1"
DEFAULT_WEIGHTS = "pancakes-default.safetensors"


def resolve(path_or_name: str | Path) -> Path:
    """Map ``"default"`` to the weights shipped in the wheel; any other value is a file path."""
    if str(path_or_name) == "default":
        ref = resources.files("pancakes_model") / "weights" / DEFAULT_WEIGHTS
        path = Path(str(ref))
        if not path.is_file():
            raise FileNotFoundError(
                f"the default weights are missing from this install ({path}); "
                "reinstall pancakes-model or pass a weights file"
            )
        return path
    path = Path(path_or_name)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    return path


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
    preprocess = getattr(model, "preprocess", None)
    if preprocess:  # written only when set: files without it use the documented defaults
        meta["preprocess"] = json.dumps(preprocess, sort_keys=True)
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
        raise ValueError(f"{path} is not a readable safetensors file: {exc}") from exc
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not a Pancakes weights file (format={meta.get('format')!r})")
    try:
        return {
            "config": json.loads(meta["config"]),
            "provenance": json.loads(meta.get("provenance", "{}")),
            "preprocess": json.loads(meta.get("preprocess", "{}")),
        }
    except (KeyError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: damaged Pancakes metadata ({exc})") from exc


def load_weights(cls, path_or_name: str | Path, *, map_location: str = "cpu"):
    """Build ``cls`` from the stored config and load the tensors, checking keys and shapes."""
    from safetensors.torch import load_file

    path = resolve(path_or_name)
    meta = read_metadata(path)
    try:
        config = PancakesConfig.from_dict(meta["config"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: impossible model config: {exc}") from exc
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
        raise ValueError(
            f"{path} does not match the Pancakes architecture: missing keys {missing}, "
            f"unexpected keys {unexpected}, shape mismatches {wrong}"
        )
    bad = sorted(k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all())
    if bad:
        raise ValueError(f"{path}: weights contain NaN or inf in {bad[:5]}{' …' if len(bad) > 5 else ''}")
    model.load_state_dict(state)
    model.provenance = meta["provenance"]
    model.preprocess = meta["preprocess"]
    model.eval()
    return model.to(map_location)
