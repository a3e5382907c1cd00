"""Training entry: the paper's procedure, composed from pancakes-data, -synth and -eval.

    python -m pancakes_model.train --config configs/default.toml [--set train.lr=1e-3 ...]
    pancakes train --config configs/default.toml --resume --max-minutes 30
    torchrun --nproc-per-node=N -m pancakes_model.train --config FILE

Per step: M ∈ [5, 15], K ∈ [5, 40] and S ∈ [2, 5] are drawn; a batch of sets comes from the
weighted ``[[data.sources]]`` with targets at every granularity and the Table-3 augmentations; the
loss is the min-(m, k) set soft-Dice loss (winner-only gradients). AdamW with warm-up and cosine
decay (``LambdaLR``), gradient clipping, an optional resolution curriculum (64² then 128²).

Distributed (torchrun): ``batch_size`` is the global batch; set i of step t is drawn from
(seed, t, i) and rank r makes the sets with i ≡ r (mod N), so the data stream does not depend on
N. Gradients are averaged by DistributedDataParallel (NCCL on GPUs, gloo on CPUs); rank 0 alone
validates, logs and writes checkpoints.

Validation on the dev families of ``val.dev`` (never trained on): Set Dice at M=8, K=20, S=3;
the best checkpoint is kept. Collapse signals are logged: labels used per protocol, agreement
between protocols, winner distribution. Outputs in ``out.dir``: ``best.safetensors``,
``last.safetensors``, ``checkpoints/step-N/`` (one unit each, see :mod:`.checkpoint`),
``log.jsonl``, ``metrics.csv``, ``curve.png``.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import threading
import time
from contextlib import contextmanager, suppress
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pancakes_data.geometry import Preprocess
from pancakes_model.loss import joint_set_dice_loss, winner_only_set_dice_loss
from pancakes_model.network import Pancakes, PancakesConfig
from pancakes_model.training import checkpoint
from pancakes_model.training.config import TrainConfig
from pancakes_model.training.provenance import commit, hardware, stage_history
from pancakes_model.training.schedule import make_scheduler, size_at

__all__ = ["Objective", "Trainer"]

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _init_worker(worker_id: int) -> None:
    """DataLoader workers leave SIGTERM/SIGINT to the main process, which checkpoints and then
    shuts them down (a Ctrl-C reaches the whole process group). They also run at a lower priority
    (``PANCAKES_WORKER_NICE``, default 10): on a machine with as many cores as training threads,
    a worker that keeps preempting one of them stalls both at every barrier; niced, it fills the
    step's single-threaded gaps instead and still keeps ahead."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    nice = int(os.environ.get("PANCAKES_WORKER_NICE", "10"))
    if nice:
        with suppress(OSError):
            os.nice(nice)


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


class Objective(torch.nn.Module):
    """The training loss as a module (so DistributedDataParallel can wrap it): images (B, S, 1, H, W)
    and targets (T, B, S, 1, H, W) → the winner-only set loss (T = 1) or the joint one (T = 2)."""

    def __init__(self, model: Pancakes) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor, targets: torch.Tensor, M: int, K: int):
        if targets.shape[0] == 1:
            return winner_only_set_dice_loss(self.model, images, targets[0], M, K)
        return joint_set_dice_loss(self.model(images, M, K), targets)


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


def _close(loader) -> None:
    """Stop a DataLoader iterator's workers now. Left to garbage collection they may outlive the
    loop (a compiled model keeps frames alive), and at exit multiprocessing would wait forever for
    workers that ignore SIGTERM."""
    shutdown = getattr(loader, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), read from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def featurizer_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """``train.precision`` → the featurizer's autocast dtype (None: float32).

    "auto" takes bfloat16 only on a CPU with native bf16: there the step's convolutions (forward and
    backward, channels_last) run 2× faster (benchmarks/bench_train.py); GPUs keep float32 until
    measured. The sampler, the candidate table and the loss stay float32 in every case.
    """
    if precision == "bf16" or (precision == "auto" and device.type == "cpu" and native_bf16()):
        return torch.bfloat16
    return None


def _device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"train.device {name!r} requested but CUDA is not available in this torch build")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"train.device {name!r} is not a device torch knows ({exc})") from exc
    if dev.type == "cuda" and dev.index is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dev = torch.device("cuda", local_rank)
    return dev


class Trainer:
    """Holds the model, optimizer, data and logs of one run (see module docstring)."""

    def __init__(self, cfg: TrainConfig, *, resume: bool = False, progress: bool = True) -> None:
        self.cfg = cfg
        t = cfg.train
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        if t.batch_size % self.world:
            raise ValueError(f"train.batch_size {t.batch_size} must be a multiple of the {self.world} processes")
        self.device = _device(t.device, int(os.environ.get("LOCAL_RANK", "0")))
        if self.world > 1 and not torch.distributed.is_initialized():
            torch.distributed.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            torch.backends.cudnn.benchmark = True  # few distinct shapes (one per S): tuning pays off
        if t.threads:
            torch.set_num_threads(t.threads)
        self.out = Path(cfg.out.dir)
        self.progress = progress and self.rank == 0
        torch.set_flush_denormal(True)  # AdamW state sinks into denormals otherwise (200× slower step)
        torch.manual_seed(t.seed)
        if t.init:  # fine-tune from existing weights (e.g. continue the shipped model on new data)
            self.model = Pancakes.from_pretrained(t.init).to(self.device).train()
        else:
            self.model = Pancakes(PancakesConfig.from_dict(cfg.model)).to(self.device).train()
        self.base_provenance = dict(self.model.provenance)
        self.model.featurizer_dtype = featurizer_dtype(t.precision, self.device)
        if self.model.featurizer_dtype is not None:  # bf16 convolutions want channels_last (2× vs 1.4×)
            self.model.set_memory_format("channels_last")
        if t.compile:
            self.model.compile_queries()
        # The stores and generators prepare images with the default settings at the curriculum's
        # last size; the weights carry that, so inference prepares inputs the same way.
        self.model.preprocess = Preprocess(size=int(t.curriculum[-1][1])).to_dict()
        self.objective = Objective(self.model)
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.objective = torch.nn.parallel.DistributedDataParallel(self.objective, device_ids=ids)
        fused = self.device.type in ("cpu", "cuda")
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=t.lr, weight_decay=t.weight_decay, fused=fused)
        self.scheduler = make_scheduler(self.opt, t)
        self.step, self.best, self.elapsed = 0, float("nan"), 0.0
        self._build_data()
        if resume:
            self._resume()
        elif self.out.exists() and ((self.out / "checkpoints").exists() or any(self.out.glob("*.safetensors"))):
            raise ValueError(f"{self.out} already holds a run; pass --resume to continue it or choose another out.dir")

    # ---- data
    def _build_data(self) -> None:
        from pancakes_data import SamplerConfig, SetSampler, TargetMix
        from pancakes_model.training.data import training_sources, validation_sets
        from pancakes_model.training.devset import load_dev

        d, t = self.cfg.data, self.cfg.train
        self.dev = load_dev(self.cfg.val.dev) if self.cfg.val.dev else None
        self.sources = training_sources(self.cfg, self.dev)
        self.sampler_cfg = SamplerConfig(
            set_size=tuple(t.S),
            batch_size=t.batch_size,
            targets=t.targets,
            split="train",
            augment=d.augment,
            defer_augmentation=d.augment and d.augment_on == "device",
            target_mix=TargetMix.from_dict(d.target_mix),
            seed=t.seed,
        )
        self.sampler = SetSampler(self.sources, config=self.sampler_cfg)
        self.val_sets = validation_sets(self.cfg, self.dev) if self.dev is not None and self.rank == 0 else {}

    def _loader(self):
        """An iterator over this rank's batches from step ``self.step`` on; call :func:`_close` when done."""
        from pancakes_data import SetSampler

        workers = self.cfg.train.workers
        mine = [i for i in range(self.cfg.train.batch_size) if i % self.world == self.rank]  # this rank's sets
        stream = SetSampler(self.sources, config=self.sampler_cfg, start=self.step, sets=mine)
        return iter(
            torch.utils.data.DataLoader(
                stream,
                batch_size=None,
                num_workers=workers,
                persistent_workers=False,
                prefetch_factor=4 if workers else None,
                pin_memory=self.device.type == "cuda",
                worker_init_fn=_init_worker if workers else None,
            )
        )

    # ---- one step
    def _mk(self, step: int) -> tuple[int, int]:
        rng = np.random.default_rng([self.cfg.train.seed, 7, step])
        (m0, m1), (k0, k1) = self.cfg.train.M, self.cfg.train.K
        return int(rng.integers(m0, m1 + 1)), int(rng.integers(k0, k1 + 1))

    def train_step(self, batch: dict) -> dict:
        t = self.cfg.train
        m, k = self._mk(self.step)
        size = size_at(self.step, t)
        images = batch["images"].to(self.device, non_blocking=True)
        targets = batch["targets"].to(self.device, non_blocking=True)
        if "augment" in batch:  # data.augment_on = "device": parameters drawn by the workers
            images, targets = self.sampler.augmentation.apply_batch(images, targets, batch["augment"])
        images, targets = _resize(images, targets, size)
        self.opt.zero_grad(set_to_none=True)
        res = self.objective(images, targets, m, k)
        res.loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.clip)
        lr = self.opt.param_groups[0]["lr"]
        self.opt.step()
        self.scheduler.step()
        self.step += 1
        return {
            "kind": "train",
            "step": self.step,
            "loss": float(res.loss.detach()),
            "lr": lr,
            "M": m,
            "K": k,
            "S": int(images.shape[1]),
            "size": size,
            "grad_norm": float(grad_norm),
            "winner_m_frac": (res.protocol.float() / max(m - 1, 1)).mean().item(),
            "winner_k": res.label.float().mean().item(),
        }

    # ---- validation
    @torch.no_grad()
    def validate(self) -> dict:
        from pancakes_eval import compute_nmi, compute_set_dice

        v = self.cfg.val
        self.model.eval()
        per: dict[str, float] = {}
        used, agree, winners = [], [], np.zeros(v.M)
        for name, sets in self.val_sets.items():
            scores = []
            for b in sets:
                lab = self.model.predict_labels(b["images"].to(self.device), v.M, v.K)[0].cpu().numpy()
                y = b["targets"][0, 0, :, 0].numpy()
                res = compute_set_dice(lab, y, num_labels=v.K)
                scores.append(res.score)
                winners[res.protocol] += 1
                used += [len(np.unique(lab[s, m])) for s in range(lab.shape[0]) for m in range(lab.shape[1])]
                agree += [compute_nmi(lab[0, i], lab[0, j]) for i in range(v.M) for j in range(i + 1, v.M)]
            per[name] = float(np.mean(scores))
        self.model.train()
        return {
            "kind": "val",
            "step": self.step,
            "val_set_dice": float(np.mean(list(per.values()))) if per else float("nan"),
            **{f"val_{k}": s for k, s in per.items()},
            "labels_used_per_protocol": float(np.mean(used)) if used else 0.0,
            "protocol_agreement_nmi": float(np.mean(agree)) if agree else 0.0,
            "winner_protocol_hist": (winners / max(winners.sum(), 1)).round(3).tolist(),
        }

    # ---- checkpoints
    def provenance(self) -> dict:
        t = self.cfg.train
        stage = {
            "steps": self.step,
            "sets_seen": self.step * t.batch_size,
            "resolution": [list(c) for c in t.curriculum],
            "hardware": hardware(self.device, self.world),
            "wall_time_s": round(self.elapsed, 1),
            "commit": commit(),
            "init": t.init or "random",
            "sources": [[s.spec, s.weight] for s in self.cfg.data.sources],
        }
        stages = stage_history(self.base_provenance, stage) if t.init else [stage]
        return {
            "config": self.cfg.to_dict(),
            "commit": stage["commit"],
            "data_sources": [s.name for s in self.sources],
            "steps": self.step,
            "wall_time_s": round(self.elapsed, 1),
            "hardware": stage["hardware"],
            "best_val_set_dice": None if np.isnan(self.best) else self.best,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "stages": stages,
            "totals": {
                "steps": sum(s["steps"] for s in stages),
                "sets_seen": sum(s["sets_seen"] for s in stages),
                "wall_time_s": round(sum(s["wall_time_s"] for s in stages), 1),
            },
        }

    def save(self, *, best: bool = False) -> None:
        if self.rank != 0:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        prov = self.provenance()
        if best:
            self.model.save_pretrained(self.out / "best.safetensors", provenance=prov)
            return
        state = {"best": self.best, "elapsed": self.elapsed, "scheduler": self.scheduler.state_dict()}
        checkpoint.save(self.out, step=self.step, model=self.model, optimizer=self.opt, state=state, provenance=prov)
        self.model.save_pretrained(self.out / "last.safetensors", provenance=prov)

    def _resume(self) -> None:
        folder = checkpoint.latest(self.out)
        if folder is None:
            raise FileNotFoundError(f"--resume: no complete checkpoint under {self.out / 'checkpoints'}")
        state = checkpoint.load(folder, model=self.model, optimizer=self.opt, device=self.device)
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.best, self.elapsed = int(state["step"]), float(state["best"]), float(state["elapsed"])
        if self.rank == 0:  # the log continues from the restored step: later rows are dropped
            log = self.out / "log.jsonl"
            if log.is_file():
                keep = [
                    r for r in log.read_text(encoding="utf-8").splitlines() if r and json.loads(r)["step"] <= self.step
                ]
                tmp = log.with_name(log.name + ".tmp")
                tmp.write_text("".join(r + "\n" for r in keep), encoding="utf-8")
                tmp.replace(log)

    # ---- the loop
    def _log(self, row: dict) -> None:
        if self.rank != 0:
            return
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
        return (
            [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
            if path.is_file()
            else []
        )

    def _stop_now(self, start: float, limit: float, signalled: bool) -> bool:
        stop = signalled or (limit > 0 and time.perf_counter() - start > limit)
        if self.world > 1:  # every rank stops at the same step, whichever rank was signalled
            flag = torch.tensor([float(stop)], device=self.device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            stop = bool(flag.item())
        return stop

    def run(self, *, max_minutes: float | None = None) -> dict:
        """Train until ``train.steps``, ``max_minutes`` or a SIGTERM/SIGINT, each of which ends
        with a checkpoint of the last finished step; the result's ``signal`` names the signal."""
        with _stop_requests() as got:
            result = self._run(max_minutes, got)
        result["signal"] = signal.Signals(got[0]).name if got else None
        return result

    def _run(self, max_minutes: float | None, got: list[int]) -> dict:
        from tqdm.auto import tqdm

        t = self.cfg.train
        limit = (max_minutes if max_minutes is not None else t.max_minutes) * 60
        start, base_elapsed = time.perf_counter(), self.elapsed
        loader = self._loader()
        last_val: dict = {}
        recent: list[float] = []
        bar = tqdm(total=t.steps, initial=self.step, disable=not self.progress, unit="step", dynamic_ncols=True)
        t_last = time.perf_counter()
        waited = 0.0  # time spent waiting on the data loader since the last log row
        while self.step < t.steps:
            t_wait = time.perf_counter()
            batch = next(loader)
            waited += time.perf_counter() - t_wait
            row = self.train_step(batch)
            self.elapsed = base_elapsed + time.perf_counter() - start
            recent.append(row["loss"])
            bar.update(1)
            if self.step % t.log_every == 0 or self.step == 1:
                now = time.perf_counter()
                row["it_per_s"] = t.log_every / max(now - t_last, 1e-9) if self.step > 1 else 0.0
                # the share of wall time the step waited for data: is the model starved?
                row["data_wait"] = round(waited / max(now - t_last, 1e-9), 3) if self.step > 1 else 0.0
                waited = 0.0
                t_last = now
                row["loss_avg"] = float(np.mean(recent[-t.log_every :]))
                self._log(row)
                post = {"loss": f"{row['loss_avg']:.3f}"}
                if not np.isnan(self.best):
                    post["best val"] = f"{self.best:.3f}"
                bar.set_postfix(post)
            if self.rank == 0 and self.val_sets and (self.step % self.cfg.val.every == 0 or self.step == t.steps):
                last_val = self.validate()
                self._log(last_val)
                if np.isnan(self.best) or last_val["val_set_dice"] > self.best:
                    self.best = last_val["val_set_dice"]
                    self.save(best=True)
            if self.step % t.checkpoint_every == 0:
                self.save()
            if self._stop_now(start, limit, bool(got)):
                why = f"on {signal.Signals(got[0]).name}" if got else f"after {limit / 60:.1f} minutes"
                bar.write(f"stopping {why} at step {self.step} (checkpoint saved)")
                break
        bar.close()
        _close(loader)
        self.save()
        if self.rank == 0:
            if not (self.out / "best.safetensors").is_file():
                self.save(best=True)
            from pancakes_model.training.curve import draw_curve

            draw_curve(self.rows(), self.out / "curve.png")
        best = None if np.isnan(self.best) else self.best
        return {"step": self.step, "best_val_set_dice": best, "last_val": last_val, "out": str(self.out)}
