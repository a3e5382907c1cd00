"""Training checkpoints written as one unit, and the newest complete one found on resume.

A checkpoint is a folder ``OUT/checkpoints/step-NNNNNNNN/`` holding ``model.safetensors`` (weights,
config, provenance), ``optimizer.safetensors`` (optimizer tensors and the RNG state) and
``state.json`` (step, scheduler, best score, elapsed time); a run with a moving average of its
weights (:mod:`.ema`) keeps it in the optimizer file under ``ema.<name>``. It is written under a
temporary name and renamed into place, so a kill at any moment leaves either the complete folder or
none; resume takes the newest complete one. The ``keep`` newest are kept (2 by default).

The *flat* layout (``train.checkpoint_layout = "flat"``, the GPU run's) is one file,
``OUT/checkpoint.safetensors``: the weights under ``model.``, the optimizer tensors under ``opt.``,
the moving average under ``ema.``, the RNG, and the state JSON in the file's metadata. One file is
replaced by one rename, so it is either the old checkpoint or the new one, and a run whose outputs
are copied back by a file count (the lent GPU machine brings back at most 8 files) carries the whole
checkpoint in one.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from pancakes_model.network import load_weights
from pancakes_model.network.weights import user_mode
from pancakes_model.training.config import ConfigError
from pancakes_model.training.ema import WeightAverage

__all__ = ["FLAT", "latest", "load", "save"]

KEEP = 2
FLAT = "checkpoint.safetensors"
_STATE_FILES = {"model.safetensors", "optimizer.safetensors", "state.json"}


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """The optimizer's per-parameter tensors by ``"<index>.<key>"`` and its param groups (no params)."""
    tensors, groups = {}, []
    opt_state = optimizer.state_dict()
    for idx, group in opt_state["state"].items():
        for key, val in group.items():
            tensors[f"{idx}.{key}"] = val.detach().cpu().contiguous()
    for g in opt_state["param_groups"]:
        groups.append({k: v for k, v in g.items() if k != "params"})
    return tensors, groups


def save(
    root: Path,
    *,
    step: int,
    model,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    provenance: dict,
    keep: int = KEEP,
    flat: bool = False,
    ema: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write checkpoint ``step`` atomically, under ``root/checkpoints`` (``keep`` newest kept) or, when
    ``flat``, as ``root/checkpoint.safetensors``; returns its path. ``ema``: the weights' moving
    average by name, when the run keeps one."""
    extra = {f"ema.{k}": v for k, v in (ema or {}).items()}
    if flat:
        return _save_flat(
            root, step=step, model=model, optimizer=optimizer, state=state, provenance=provenance, extra=extra
        )
    base = root / "checkpoints"
    base.mkdir(parents=True, exist_ok=True)
    final = base / f"step-{step:08d}"
    tmp = base / f".tmp-step-{step:08d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    model.save_pretrained(tmp / "model.safetensors", provenance=provenance)
    tensors, groups = _optimizer_tensors(optimizer)
    tensors["torch_rng"] = torch.get_rng_state()
    tensors.update(extra)  # "ema.*" never collides with the optimizer's "<index>.<key>"
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
    for old in sorted(p for p in base.glob("step-*") if p.is_dir())[: -max(keep, 1)]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in base.glob(".tmp-step-*"):
        if stale != tmp:
            shutil.rmtree(stale, ignore_errors=True)
    return final


def _save_flat(
    root: Path, *, step: int, model, optimizer, state: dict[str, Any], provenance: dict, extra: dict
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    final = root / FLAT
    tmp = root / f".{FLAT}.{os.getpid()}.tmp"
    opt, groups = _optimizer_tensors(optimizer)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors.update({f"opt.{k}": v for k, v in opt.items()})
    tensors.update(extra)
    tensors["torch_rng"] = torch.get_rng_state()
    meta = {"state": json.dumps({**state, "step": step, "param_groups": groups}, default=str)}
    meta["provenance"] = json.dumps(provenance, sort_keys=True, default=str)
    save_file(tensors, str(tmp), metadata=meta)
    user_mode(tmp)
    with tmp.open("rb") as fh:
        os.fsync(fh.fileno())
    tmp.replace(final)
    _fsync_dir(root)
    return final


def _flat_step(path: Path) -> int | None:
    """The step of a complete flat checkpoint, or None when it is missing or unreadable."""
    try:
        with safe_open(str(path), framework="pt") as fh:
            return int(json.loads((fh.metadata() or {})["state"])["step"])
    except (OSError, KeyError, ValueError, TypeError, SafetensorError):
        return None


def latest(root: Path) -> Path | None:
    """The newest complete checkpoint under ``root`` (a ``checkpoints/step-N`` folder or the flat
    ``checkpoint.safetensors``, whichever holds the later step), or None."""
    found: list[tuple[int, Path]] = []
    flat_step = _flat_step(root / FLAT)
    if flat_step is not None:
        found.append((flat_step, root / FLAT))
    base = root / "checkpoints"
    folders = sorted((p for p in base.glob("step-*") if p.is_dir()), reverse=True) if base.is_dir() else []
    for folder in folders:
        if {f.name for f in folder.iterdir()} >= _STATE_FILES:
            try:
                step = int(json.loads((folder / "state.json").read_text(encoding="utf-8"))["step"])
            except (OSError, json.JSONDecodeError, KeyError, ValueError, TypeError):
                continue
            found.append((step, folder))
            break
    return max(found, key=lambda f: f[0])[1] if found else None


def load(
    path: Path, *, model, optimizer: torch.optim.Optimizer, device: torch.device, ema: WeightAverage | None = None
) -> dict[str, Any]:
    """Restore weights, optimizer and RNG from the checkpoint at ``path`` (a folder or the flat file);
    returns its state (state.json's content). ``ema`` is restored too when the checkpoint holds
    one; a checkpoint of a run without it leaves ``ema`` at its start (the restored weights), and
    ``state["ema_restored"]`` says which."""
    if path.is_file():
        everything = load_file(str(path))
        with safe_open(str(path), framework="pt") as fh:
            state = json.loads(fh.metadata()["state"])
        model.load_state_dict({k.removeprefix("model."): v for k, v in everything.items() if k.startswith("model.")})
        tensors = {k.removeprefix("opt."): v for k, v in everything.items() if k.startswith("opt.")}
        tensors.update({k: v for k, v in everything.items() if k.startswith("ema.")})
        tensors["torch_rng"] = everything["torch_rng"]
    else:
        loaded = load_weights(type(model), path / "model.safetensors", map_location=str(device))
        model.load_state_dict(loaded.state_dict())
        state = json.loads((path / "state.json").read_text(encoding="utf-8"))
        tensors = load_file(str(path / "optimizer.safetensors"))
    # The saved state is indexed as torch numbers parameters: group by group, in group order (a
    # set-context branch with its own learning rate is the second group), so the optimizer's own
    # layout, not model.parameters(), maps an index back to its parameter.
    current = optimizer.state_dict()["param_groups"]
    saved = state["param_groups"]
    if len(saved) != len(current):
        raise ConfigError(
            f"--resume: the checkpoint at {path} has {len(saved)} optimizer group(s), this config builds "
            f"{len(current)} (train.context_lr_scale changed?)"
        )
    restored: dict[str, Any] = {"state": {}, "param_groups": []}
    for g, cur in zip(saved, current, strict=True):
        restored["param_groups"].append({**g, "params": cur["params"]})
    for i in range(sum(len(g["params"]) for g in current)):
        keys = {k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith(f"{i}.")}
        if keys:
            restored["state"][i] = {k: v.to(device) for k, v in keys.items()}
    optimizer.load_state_dict(restored)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    for p in params:  # the files hold contiguous tensors; fused AdamW wants each state laid out as its param
        for key, val in optimizer.state.get(p, {}).items():
            if isinstance(val, torch.Tensor) and val.shape == p.shape and val.stride() != p.stride():
                optimizer.state[p][key] = torch.empty_like(p).copy_(val)
    torch.set_rng_state(tensors["torch_rng"])
    averaged = {k.removeprefix("ema."): v for k, v in tensors.items() if k.startswith("ema.")}
    state["ema_restored"] = False
    if ema is not None:
        if averaged:
            ema.load_state_dict(averaged)
            state["ema_restored"] = True
        else:
            ema.load_state_dict({k: v.detach() for k, v in model.state_dict().items() if k in ema.tensors})
    return state
