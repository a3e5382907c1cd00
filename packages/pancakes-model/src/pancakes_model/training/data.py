"""From a config's ``[[data.sources]]`` to batches: the weighted sources (dev families refused),
the fixed validation sets drawn from the dev config, and the DataLoader that keeps ahead of the
step (its workers niced, ignoring stop signals, and shut down explicitly)."""

from __future__ import annotations

import os
import signal
from contextlib import suppress
from pathlib import Path

import torch

from pancakes_data import SamplerConfig, SetSampler, Source, TargetMix
from pancakes_model.training.config import TrainConfig
from pancakes_model.training.devset import DevConfig, check_training_sources, family_sets
from pancakes_model.training.kinds import project_kinds
from pancakes_synth import open_source

__all__ = [
    "STOP_SIGNALS",
    "close_loader",
    "make_loader",
    "open_training_source",
    "sampler_config",
    "training_sources",
    "validation_sets",
]

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def open_training_source(spec: str, *, store: str | Path, set_size: int, seed: int, cache_dir: str | None = None):
    """One source: any pancakes-synth spec (``procedural``, ``scenes:…``, ``labels:DIR``,
    ``shards:DIR``, …) or one of training's own kinds (:mod:`.kinds`: ``store:NAME``, ``atlases:PACKAGE``)."""
    return open_source(spec, set_size=set_size, seed=seed, cache_dir=cache_dir or None, kinds=project_kinds(store))


def training_sources(cfg: TrainConfig, dev: DevConfig | None) -> list[Source]:
    """The weighted :class:`pancakes_data.Source` list of a config (dev families refused)."""
    specs = [s.spec for s in cfg.data.sources]
    if dev is not None:
        check_training_sources(specs, dev, store=cfg.data.store)
    out = []
    for entry in cfg.data.sources:
        if entry.weight == 0:
            continue
        data = open_training_source(
            entry.spec, store=cfg.data.store, set_size=cfg.train.S[1], seed=cfg.train.seed,
            cache_dir=cfg.data.cache_dir,
        )  # fmt: skip
        mix = TargetMix.from_dict(entry.target_mix) if entry.target_mix else None
        flip = entry.intensity_flip or None  # None: the sampler's (data.intensity_flip)
        out.append(Source(entry.spec, data, entry.weight, target_mix=mix, intensity_flip=flip))
    return out


def sampler_config(cfg: TrainConfig) -> SamplerConfig:
    """The set sampler's knobs for a training config."""
    d, t = cfg.data, cfg.train
    return SamplerConfig(
        set_size=tuple(t.S),
        batch_size=t.batch_size,
        targets=t.targets,
        split="train",
        augment=d.augment,
        intensity_flip=d.intensity_flip,
        defer_augmentation=d.augment and d.augment_on == "device",
        target_mix=TargetMix.from_dict(d.target_mix),
        seed=t.seed,
    )


def validation_sets(cfg: TrainConfig, dev: DevConfig) -> dict[str, list[dict]]:
    """A few fixed sets of every dev family, drawn with another seed than the dev evaluation's,
    so checkpoints are not chosen on the very sets they are evaluated on."""
    return {
        fam.name: family_sets(fam, s=cfg.val.S, n=cfg.val.sets, seed=dev.seed + 1, store=dev.store)
        for fam in dev.families
    }


def _init_worker(worker_id: int) -> None:
    """DataLoader workers leave SIGTERM/SIGINT to the main process, which checkpoints and then
    shuts them down (a Ctrl-C reaches the whole process group). They also run at a lower priority
    (``PANCAKES_WORKER_NICE``, default 10): on a machine with as many cores as training threads, a
    worker that keeps preempting one of them stalls both at every barrier; niced, it fills the
    step's single-threaded gaps instead and still keeps ahead."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    nice = int(os.environ.get("PANCAKES_WORKER_NICE", "10"))
    if nice:
        with suppress(OSError):
            os.nice(nice)


def make_loader(sampler: SetSampler, *, workers: int, pin_memory: bool):
    """An iterator over ``sampler``'s batches in order; stop it with :func:`close_loader`."""
    return iter(
        torch.utils.data.DataLoader(
            sampler,
            batch_size=None,
            num_workers=workers,
            persistent_workers=False,
            prefetch_factor=4 if workers else None,
            pin_memory=pin_memory,
            worker_init_fn=_init_worker if workers else None,
        )
    )


def close_loader(loader) -> None:
    """Stop a DataLoader iterator's workers now. Left to garbage collection they may outlive the
    loop (a compiled model keeps frames alive), and at exit multiprocessing would wait forever for
    workers that ignore SIGTERM."""
    shutdown = getattr(loader, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()
