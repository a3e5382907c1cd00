"""What a weights file records about how it was made: hardware, commit, and the stages of
training that accumulated into it (each continued run appends one)."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path

import torch

__all__ = ["commit", "cpu_name", "hardware", "run_provenance", "stage_history", "stage_totals"]


def cpu_name() -> str:
    """The CPU model (from /proc/cpuinfo on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware(device: torch.device, processes: int = 1) -> str:
    many = f"{processes} × " if processes > 1 else ""
    if device.type == "cuda":
        return f"{many}{torch.cuda.get_device_name(device)} (CUDA), torch {torch.__version__}"
    return f"{many}{cpu_name()}, {torch.get_num_threads()} threads (CPU), torch {torch.__version__}"


def commit() -> str:
    if os.environ.get("PANCAKES_COMMIT"):  # set where the checkout has no .git (e.g. a copied tree)
        return os.environ["PANCAKES_COMMIT"]
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def stage_history(base: dict, stage: dict) -> list[dict]:
    """The stages of a model continued from weights with provenance ``base``, plus ``stage``.

    Files written before stages were recorded describe one stage in their top-level fields.
    """
    if base.get("stages"):
        return [*base["stages"], stage]
    if not base:
        return [stage]
    cfg = base.get("config", {})
    train = cfg.get("train", {}) if isinstance(cfg, dict) else {}
    legacy = {
        "steps": int(base.get("steps", 0)),
        "sets_seen": int(base.get("steps", 0)) * int(train.get("batch_size", 0)),
        "resolution": train.get("curriculum", []),
        "hardware": base.get("hardware", "unknown"),
        "wall_time_s": float(base.get("wall_time_s", 0.0)),
        "commit": base.get("commit", "unknown"),
        "init": train.get("init") or "random",
        "sources": base.get("data_sources", []),
    }
    return [legacy, stage]


def stage_totals(stages: list[dict]) -> dict:
    """Steps, sets seen and wall time summed over every stage a model went through."""
    return {
        "steps": sum(s["steps"] for s in stages),
        "sets_seen": sum(s["sets_seen"] for s in stages),
        "wall_time_s": round(sum(s["wall_time_s"] for s in stages), 1),
    }


def run_provenance(
    cfg: dict, *, step: int, batch_size: int, curriculum, elapsed: float, best: float, device: torch.device,
    world: int, init: str, sources: list[tuple[str, float]], source_names: list[str], base: dict,
) -> dict:  # fmt: skip
    """What a weights file written at ``step`` records: the config, this stage and every stage the
    model went through (``base``: the provenance of the weights it was continued from)."""
    stage = {
        "steps": step,
        "sets_seen": step * batch_size,
        "resolution": [list(c) for c in curriculum],
        "hardware": hardware(device, world),
        "wall_time_s": round(elapsed, 1),
        "commit": commit(),
        "init": init or "random",
        "sources": [list(s) for s in sources],
    }
    stages = stage_history(base, stage) if init else [stage]
    return {
        "config": cfg,
        "commit": stage["commit"],
        "data_sources": source_names,
        "steps": step,
        "wall_time_s": round(elapsed, 1),
        "hardware": stage["hardware"],
        "best_val_set_dice": None if best != best else best,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "stages": stages,
        "totals": stage_totals(stages),
    }
