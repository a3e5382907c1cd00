"""Training checkpoints written as one unit, and the newest complete one found on resume.

A checkpoint is a folder ``OUT/checkpoints/step-NNNNNNNN/`` holding ``model.safetensors`` (weights,
config, provenance), ``optimizer.safetensors`` (optimizer tensors and the RNG state) and
``state.json`` (step, scheduler, best score, elapsed time). It is written under a temporary name
and renamed into place, so a kill at any moment leaves either the complete folder or none; resume
takes the newest complete one. The two newest are kept.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from pancakes_model.network import load_weights
from pancakes_model.network.weights import user_mode

__all__ = ["latest", "load", "save"]

KEEP = 2


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save(
    root: Path, *, step: int, model, optimizer: torch.optim.Optimizer, state: dict[str, Any], provenance: dict
) -> Path:
    """Write checkpoint ``step`` under ``root/checkpoints`` atomically; returns its folder."""
    base = root / "checkpoints"
    base.mkdir(parents=True, exist_ok=True)
    final = base / f"step-{step:08d}"
    tmp = base / f".tmp-step-{step:08d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    model.save_pretrained(tmp / "model.safetensors", provenance=provenance)
    tensors, groups = {}, []
    opt_state = optimizer.state_dict()
    for idx, group in opt_state["state"].items():
        for key, val in group.items():
            tensors[f"{idx}.{key}"] = val.detach().cpu().contiguous()
    for g in opt_state["param_groups"]:
        groups.append({k: v for k, v in g.items() if k != "params"})
    tensors["torch_rng"] = torch.get_rng_state()
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    user_mode(tmp / "optimizer.safetensors")
    (tmp / "state.json").write_text(json.dumps({**state, "step": step, "param_groups": groups}), encoding="utf-8")
    for f in tmp.iterdir():
        with f.open("rb") as fh:
            os.fsync(fh.fileno())
    if final.exists():  # the same step written again (a resumed run that stopped at once)
        shutil.rmtree(final)
    tmp.rename(final)
    _fsync_dir(base)
    for old in sorted(p for p in base.glob("step-*") if p.is_dir())[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in base.glob(".tmp-step-*"):
        if stale != tmp:
            shutil.rmtree(stale, ignore_errors=True)
    return final


def latest(root: Path) -> Path | None:
    """The newest complete checkpoint folder under ``root/checkpoints``, or None."""
    base = root / "checkpoints"
    if not base.is_dir():
        return None
    for folder in sorted((p for p in base.glob("step-*") if p.is_dir()), reverse=True):
        names = {"model.safetensors", "optimizer.safetensors", "state.json"}
        if names <= {f.name for f in folder.iterdir()}:
            try:
                json.loads((folder / "state.json").read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                continue
            return folder
    return None


def load(folder: Path, *, model, optimizer: torch.optim.Optimizer, device: torch.device) -> dict[str, Any]:
    """Restore weights, optimizer and RNG from ``folder``; returns state.json's content."""
    loaded = load_weights(type(model), folder / "model.safetensors", map_location=str(device))
    model.load_state_dict(loaded.state_dict())
    state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    tensors = load_file(str(folder / "optimizer.safetensors"))
    params = list(model.parameters())
    restored: dict[str, Any] = {"state": {}, "param_groups": []}
    for i in range(len(params)):
        keys = {k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith(f"{i}.")}
        if keys:
            restored["state"][i] = {k: v.to(device) for k, v in keys.items()}
    for g in state["param_groups"]:
        restored["param_groups"].append({**g, "params": list(range(len(params)))})
    optimizer.load_state_dict(restored)
    for p in params:  # the files hold contiguous tensors; fused AdamW wants each state laid out as its param
        for key, val in optimizer.state.get(p, {}).items():
            if isinstance(val, torch.Tensor) and val.shape == p.shape and val.stride() != p.stride():
                optimizer.state[p][key] = torch.empty_like(p).copy_(val)
    torch.set_rng_state(tensors["torch_rng"])
    return state
