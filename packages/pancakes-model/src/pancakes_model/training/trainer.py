"""The training loop: the paper's procedure, composed from its parts.

Per step (:mod:`.step`): M ∈ [5, 15], K ∈ [5, 40] and S ∈ [2, 5] are drawn; a batch of sets comes
from the weighted ``[[data.sources]]`` (:mod:`.data`) with targets at every granularity and the
Table-3 augmentations; the loss is the min-(m, k) set soft-Dice loss (winner-only gradients). AdamW
with warm-up and cosine decay (``LambdaLR``), gradient clipping, an optional resolution curriculum.

Around the steps: validation on the dev families (:mod:`.validation`, the best checkpoint kept), the
run log (:mod:`.runlog`), checkpoints (:mod:`.checkpoint`) and the provenance written into every
weights file (:mod:`.provenance`). Outputs in ``out.dir``: ``best.safetensors``,
``last.safetensors``, ``checkpoints/step-N/`` (or one ``checkpoint.safetensors`` in the flat
layout), ``log.jsonl``, ``metrics.csv``, ``curve.png``, and with ``train.ema`` the moving average of
the weights as ``ema.safetensors`` (:mod:`.ema`; validated beside the live weights). Checkpoints are
written every ``checkpoint_every`` steps and, with ``checkpoint_minutes``, whenever that much time
passed since the last one.

Distributed (torchrun): ``batch_size`` is the global batch; set i of step t is drawn from
(seed, t, i) and rank r makes the sets with i ≡ r (mod N), so the data stream does not depend on
N. Gradients are averaged by DistributedDataParallel (NCCL on GPUs, gloo on CPUs); rank 0 alone
validates, logs and writes checkpoints. The command line is :mod:`.cli`.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from pancakes_data import SetSampler
from pancakes_model.network import Pancakes
from pancakes_model.training import checkpoint
from pancakes_model.training.config import ConfigError, TrainConfig
from pancakes_model.training.curve import draw_curve
from pancakes_model.training.data import (
    STOP_SIGNALS,
    close_loader,
    make_loader,
    sampler_config,
    training_sources,
    validation_sets,
)
from pancakes_model.training.devset import load_dev
from pancakes_model.training.ema import WeightAverage
from pancakes_model.training.provenance import run_provenance
from pancakes_model.training.runlog import RunLog
from pancakes_model.training.schedule import make_scheduler, size_at
from pancakes_model.training.step import Objective, draw_mk, featurizer_dtype, train_step
from pancakes_model.training.validation import validate

__all__ = ["Trainer"]


@contextmanager
def _stop_requests():
    """Yields a list that receives the number of the first SIGTERM/SIGINT (a scheduler's
    preemption, a Ctrl-C); the loop stops at the end of the step with a checkpoint. A second signal
    stops at once. Outside the main thread signals cannot be caught and nothing is installed."""
    got: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield got
        return

    def on_signal(signum, frame):
        if got:
            raise SystemExit(128 + signum)
        got.append(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    try:
        yield got
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device {name!r} requested but CUDA is not available in this torch build")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"train.device {name!r} is not a device torch knows ({exc})") from exc
    if dev.type == "cuda" and dev.index is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dev = torch.device("cuda", local_rank)
    return dev


class Trainer:
    """Holds the model, optimizer, data and log of one run (see module docstring)."""

    def __init__(
        self,
        cfg: TrainConfig,
        *,
        resume: bool = False,
        progress: bool = True,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        """``echo`` receives one line per logged row (steps/s, data wait, GPU memory) when given."""
        self.cfg = cfg
        self.echo = echo
        t = cfg.train
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        if t.batch_size % self.world:
            raise ConfigError(f"train.batch_size {t.batch_size} must be a multiple of the {self.world} processes")
        self.device = self._setup_device(t)
        self.out = Path(cfg.out.dir)
        self.progress = progress and self.rank == 0
        self.log = RunLog(self.out, enabled=self.rank == 0)
        torch.manual_seed(t.seed)
        self.model = self._build_model(t)
        self.objective = Objective(self.model, joint_weight=t.joint_weight)
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.objective = torch.nn.parallel.DistributedDataParallel(self.objective, device_ids=ids)
        fused = self.device.type in ("cpu", "cuda")
        self.opt = torch.optim.AdamW(self._param_groups(t), lr=t.lr, weight_decay=t.weight_decay, fused=fused)
        self.scheduler = make_scheduler(self.opt, t)
        self.ema = WeightAverage(self.model, decay=t.ema) if t.ema else None
        self.step, self.best, self.elapsed = 0, float("nan"), 0.0
        self.dev = load_dev(cfg.val.dev) if cfg.val.dev else None
        self.sources = training_sources(cfg, self.dev)
        self.sampler = SetSampler(self.sources, config=sampler_config(cfg))
        self.val_sets = validation_sets(cfg, self.dev) if self.dev is not None and self.rank == 0 else {}
        if resume:
            self._resume()
        elif (self.out / "checkpoints").exists() or any(self.out.glob("*.safetensors")):  # flat: checkpoint.safetensors
            raise ConfigError(f"{self.out} already holds a run; pass --resume to continue it or choose another out.dir")

    # ---- set-up
    def _setup_device(self, t) -> torch.device:
        device = _device(t.device, int(os.environ.get("LOCAL_RANK", "0")))
        if self.world > 1 and not torch.distributed.is_initialized():
            torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            if device.index is None:  # "cuda" as written in a config: this rank's GPU
                device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
            torch.backends.cudnn.benchmark = True  # few distinct shapes (one per S): tuning pays off
        if t.threads:
            torch.set_num_threads(t.threads)
        torch.set_flush_denormal(True)  # AdamW state sinks into denormals otherwise (200× slower step)
        return device

    def _param_groups(self, t) -> list[dict]:
        """One group, or two when the set-context branch learns at ``context_lr_scale`` × lr (the
        schedule's LambdaLR scales each group's own base lr)."""
        if t.context_lr_scale == 1.0 or self.model.context is None:
            return [{"params": list(self.model.parameters())}]
        branch = {id(p) for p in self.model.context.parameters()}
        rest = [p for p in self.model.parameters() if id(p) not in branch]
        return [{"params": rest}, {"params": list(self.model.context.parameters()), "lr": t.lr * t.context_lr_scale}]

    def _build_model(self, t) -> Pancakes:
        if t.init:  # continue existing weights (e.g. the shipped model on new data)
            model = Pancakes.from_pretrained(t.init).to(self.device).train()
            if self.cfg.model.label_caps:  # not architecture (no weight depends on it): [model] sets it here too
                model.config = dataclasses.replace(model.config, label_caps=self.cfg.model.label_caps)
            if self.cfg.model.set_context and model.context is None:  # grown zero-initialised: same function
                model = model.grow_set_context(self.cfg.model.set_context)
            if self.cfg.model.context_per_image and not model.config.context_per_image:  # also zero-initialised
                model = model.grow_per_image_context()
            if self.cfg.model.features > model.config.features:  # widened: the same function, seeded
                model = model.grow_features(self.cfg.model.features, seed=t.seed)
        else:
            model = Pancakes(self.cfg.model).to(self.device).train()
        self.base_provenance = dict(model.provenance)
        # The stores and generators prepare images with the default settings at the curriculum's
        # last size; the weights carry that, so inference prepares inputs the same way.
        model.preprocess = model.preprocess.with_size(int(t.curriculum[-1][1]))
        model.featurizer_dtype = featurizer_dtype(t.precision, self.device)
        if model.featurizer_dtype is not None:  # bf16 convolutions want channels_last (2× vs 1.4×)
            model.set_memory_format("channels_last")
        if t.compile:
            model.compile_queries()
        return model

    # ---- the loop
    def run(self, *, max_minutes: float | None = None) -> dict:
        """Train until ``train.steps``, ``max_minutes`` or a SIGTERM/SIGINT, each of which ends
        with a checkpoint of the last finished step; the result's ``signal`` names the signal."""
        with _stop_requests() as got:
            result = self._run(max_minutes, got)
        result["signal"] = signal.Signals(got[0]).name if got else None
        return result

    def _run(self, max_minutes: float | None, got: list[int]) -> dict:
        t = self.cfg.train
        limit = (max_minutes if max_minutes is not None else t.max_minutes) * 60
        start, base_elapsed = time.perf_counter(), self.elapsed
        loader = self.loader()
        bar = tqdm(total=t.steps, initial=self.step, disable=not self.progress, unit="step", dynamic_ncols=True)
        window = _Window(self.device)
        last_val: dict = {}
        self._saved_at, self._saved_step = time.perf_counter(), -1
        try:
            while self.step < t.steps:
                batch = window.wait(loader)
                row = self.train_step(batch)
                self.elapsed = base_elapsed + time.perf_counter() - start
                bar.update(1)
                if self.step % t.log_every == 0 or self.step == 1:
                    self.log.append(window.summarise(row, t.log_every, first=self.step == 1))
                    bar.set_postfix({"loss": f"{row['loss_avg']:.3f}"})
                    if self.echo is not None and self.rank == 0:
                        self.echo(_line(row))
                if self.rank == 0 and self.val_sets and (self.step % self.cfg.val.every == 0 or self.step == t.steps):
                    last_val = self.validate()
                due = t.checkpoint_minutes > 0 and time.perf_counter() - self._saved_at >= t.checkpoint_minutes * 60
                if self.step % t.checkpoint_every == 0 or due:
                    self.save()
                if self._stop_now(start, limit, bool(got)):
                    why = f"on {signal.Signals(got[0]).name}" if got else f"after {limit / 60:.1f} minutes"
                    bar.write(f"stopping {why} at step {self.step} (checkpoint saved)")
                    break
        finally:
            bar.close()
            close_loader(loader)
        if self._saved_step != self.step:  # the loop's last step may have been checkpointed already
            self.save()
        if self.rank == 0:
            if not (self.out / "best.safetensors").is_file():
                self.save(best=True)
            draw_curve(self.log.rows(), self.out / "curve.png")
        best = None if np.isnan(self.best) else self.best
        return {"step": self.step, "best_val_set_dice": best, "last_val": last_val, "out": str(self.out)}

    def set_steps(self, steps: int) -> None:
        """Re-plan the run's length: it ends at ``steps`` and the cosine decays to its floor there.

        For a run with a wall-clock budget whose speed is learnt only by running (a lent GPU
        machine): the step count and the schedule's position are kept, only the end moves.
        """
        state = self.scheduler.state_dict()
        self.cfg = dataclasses.replace(self.cfg, train=dataclasses.replace(self.cfg.train, steps=int(steps)))
        self.scheduler = make_scheduler(self.opt, self.cfg.train)
        self.scheduler.load_state_dict(state)

    def loader(self):
        """This rank's batches from step ``self.step`` on (see :func:`.data.make_loader`)."""
        mine = [i for i in range(self.cfg.train.batch_size) if i % self.world == self.rank]
        stream = SetSampler(self.sources, config=self.sampler.config, start=self.step, sets=mine)
        return make_loader(stream, workers=self.cfg.train.workers, pin_memory=self.device.type == "cuda")

    def train_step(self, batch: dict) -> dict:
        """One step on ``batch`` (:func:`.step.train_step`); advances ``self.step``."""
        t = self.cfg.train
        row = train_step(
            self.objective, self.model, self.opt, self.scheduler, batch, step=self.step,
            mk=draw_mk(t.seed, self.step, t.M, t.K), size=size_at(self.step, t), clip=t.clip, device=self.device,
            augmentation=self.sampler.augmentation,
        )  # fmt: skip
        if self.ema is not None:
            self.ema.update(self.model)
        self.step += 1
        return row

    def validate(self) -> dict:
        """Score the dev families' validation sets, log them, keep the best weights."""
        v = self.cfg.val
        row = validate(self.model, self.val_sets, M=v.M, K=v.K, step=self.step)
        if self.ema is not None:  # the average's own scores, under val_ema_*; "best" stays the live weights'
            with self.ema.applied(self.model):
                averaged = validate(self.model, self.val_sets, M=v.M, K=v.K, step=self.step)
            row.update({f"val_ema_{k[4:]}": x for k, x in averaged.items() if k.startswith("val_")})
        self.log.append(row)
        if np.isnan(self.best) or row["val_set_dice"] > self.best:
            self.best = row["val_set_dice"]
            self.save(best=True)
        return row

    def _stop_now(self, start: float, limit: float, signalled: bool) -> bool:
        stop = signalled or (limit > 0 and time.perf_counter() - start > limit)
        if self.world > 1:  # every rank stops at the same step, whichever rank was signalled
            flag = torch.tensor([float(stop)], device=self.device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            stop = bool(flag.item())
        return stop

    # ---- checkpoints
    def provenance(self) -> dict:
        t = self.cfg.train
        return run_provenance(
            self.cfg.to_dict(), step=self.step, batch_size=t.batch_size, curriculum=t.curriculum,
            elapsed=self.elapsed, best=self.best, device=self.device, world=self.world, init=t.init,
            sources=[(s.spec, s.weight) for s in self.cfg.data.sources], source_names=[s.name for s in self.sources],
            base=self.base_provenance,
        )  # fmt: skip

    def save(self, *, best: bool = False) -> None:
        if self.rank != 0:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        prov = self.provenance()
        if best:
            self.model.save_pretrained(self.out / "best.safetensors", provenance=prov)
            return
        t = self.cfg.train
        state = {"best": self.best, "elapsed": self.elapsed, "scheduler": self.scheduler.state_dict()}
        layout = {"keep": t.keep_checkpoints, "flat": t.checkpoint_layout == "flat", "provenance": prov}
        ema = self.ema.state_dict() if self.ema is not None else None
        checkpoint.save(self.out, step=self.step, model=self.model, optimizer=self.opt, state=state, ema=ema, **layout)
        self.model.save_pretrained(self.out / "last.safetensors", provenance=prov)
        if self.ema is not None:
            with self.ema.applied(self.model):
                averaged = {**prov, "ema_decay": self.ema.decay}
                self.model.save_pretrained(self.out / "ema.safetensors", provenance=averaged)
        self._saved_at, self._saved_step = time.perf_counter(), self.step
        self.log.append({"kind": "checkpoint", "step": self.step, "elapsed": round(self.elapsed, 2)})

    def _resume(self) -> None:
        folder = checkpoint.latest(self.out)
        if folder is None:
            raise ConfigError(f"--resume: no complete checkpoint under {self.out}")
        state = checkpoint.load(folder, model=self.model, optimizer=self.opt, device=self.device, ema=self.ema)
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.best, self.elapsed = int(state["step"]), float(state["best"]), float(state["elapsed"])
        self.log.truncate(self.step)


def _line(row: dict) -> str:
    """One log row as a line: what a GPU run's operator watches."""
    line = f"step {row['step']:>7}  loss {row['loss_avg']:.4f}  {row['it_per_s']:6.2f} steps/s"
    line += f"  data wait {100 * row['data_wait']:4.1f} %"
    if "gpu_mem_gib" in row:
        line += f"  GPU memory {row['gpu_mem_gib']:.2f} GiB (peak)"
    return line


class _Window:
    """Timing between log rows: steps per second, the share of time spent waiting for data and, on a
    GPU, the peak memory allocated."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.t_last = time.perf_counter()
        self.waited = 0.0
        self.losses: list[float] = []

    def wait(self, loader) -> dict:
        t0 = time.perf_counter()
        batch = next(loader)
        self.waited += time.perf_counter() - t0
        return batch

    def summarise(self, row: dict, every: int, *, first: bool) -> dict:
        self.losses.append(row["loss"])
        now = time.perf_counter()
        span = max(now - self.t_last, 1e-9)
        row["it_per_s"] = 0.0 if first else every / span
        row["data_wait"] = 0.0 if first else round(self.waited / span, 3)  # is the model starved?
        row["loss_avg"] = float(np.mean(self.losses[-every:]))
        if self.cuda:
            row["gpu_mem_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
        self.t_last, self.waited = now, 0.0
        return row
