"""The multi-protocol set sampler (the paper's "MegaMedical set sampler with augmentations").

Each set: dataset (weighted) → protocol → label → S images in which that label is present, or —
with probability ``synth_ratio`` — a synthetic set from pancakes-synth and one of its labels
present in all S elements. Then the Table-3 augmentations (across-set, then within-set).

Batches group sets of one S (S is drawn per batch), so they stack:

    images  (B, S, 1, H, W) float32 in [0, 1]
    targets (T, B, S, 1, H, W) float32 binary; T = 1, or 2 for the appendix-D variant
    meta    list of B dicts (source, dataset, protocol, label(s), image ids)

Reproducible: batch i is a pure function of (seed, i), whatever the number of workers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from pancakes_data.augment import SetAugmentation, paper_across_set, paper_within_set
from pancakes_data.store import Dataset

__all__ = ["SamplerConfig", "SetSampler", "collate_sets"]


@dataclass(frozen=True)
class SamplerConfig:
    """Knobs of :class:`SetSampler`.

    Attributes:
        set_size: inclusive range of S, drawn per batch.
        batch_size: sets per batch B.
        targets: T targets per set from the same protocol (1, or 2 for appendix D).
        split: subject split of the real datasets ("train", "val", "test", "all").
        synth_ratio: probability that a set is synthetic (needs a synthetic source).
        augment: apply the Table-3 augmentations.
        min_pixels: a label counts as present in an image from this many pixels on.
        weights: sampling weight per dataset name (default: equal).
        seed: master seed.
    """

    set_size: tuple[int, int] = (2, 5)
    batch_size: int = 1
    targets: int = 1
    split: str = "train"
    synth_ratio: float = 0.5
    augment: bool = True
    min_pixels: int = 10
    weights: dict[str, float] | None = None
    seed: int = 0


def collate_sets(items: Sequence[dict]) -> dict:
    """Stack sets of equal S into a batch (see module docstring)."""
    sizes = {it["images"].shape[0] for it in items}
    if len(sizes) != 1:
        raise ValueError(f"a batch must hold sets of one size S, got {sorted(sizes)}")
    return {
        "images": torch.stack([it["images"] for it in items]),
        "targets": torch.stack([it["targets"] for it in items], dim=1),
        "meta": [it["meta"] for it in items],
    }


class SetSampler(torch.utils.data.IterableDataset):
    """Endless batches of sets (use with ``DataLoader(sampler, batch_size=None, num_workers=...)``).

    Args:
        datasets: real datasets of the store (may be empty when everything is synthetic).
        synth: a synthetic source — a ``pancakes_synth.SetGenerator`` (on the fly) or a
            ``pancakes_synth.ShardDataset`` (from disk) — or ``None``.
        config: sampling knobs.
        start: index of the first batch the iterator yields (to resume a run).
    """

    def __init__(
        self, datasets: Sequence[Dataset], *, synth=None, config: SamplerConfig | None = None, start: int = 0
    ) -> None:
        self.start = int(start)
        self.config = cfg = config or SamplerConfig()
        lo, hi = cfg.set_size
        if not 1 <= lo <= hi:
            raise ValueError(f"set_size must be a range 1 <= lo <= hi, got {cfg.set_size}")
        if cfg.targets not in (1, 2):
            raise ValueError(f"targets (T) must be 1 or 2, got {cfg.targets}")
        if cfg.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {cfg.batch_size}")
        if not 0.0 <= cfg.synth_ratio <= 1.0:
            raise ValueError(f"synth_ratio must be within [0, 1], got {cfg.synth_ratio}")
        self.datasets = list(datasets)
        self.synth = synth
        if not self.datasets and synth is None:
            raise ValueError("nothing to sample from: no datasets and no synthetic source")
        if not self.datasets and cfg.synth_ratio < 1.0:
            self.config = cfg = SamplerConfig(**{**cfg.__dict__, "synth_ratio": 1.0})
        if synth is None and cfg.synth_ratio > 0:
            self.config = cfg = SamplerConfig(**{**cfg.__dict__, "synth_ratio": 0.0})
        names = [d.name for d in self.datasets]
        unknown = sorted(set(cfg.weights or {}) - set(names))
        if unknown:
            raise ValueError(f"weights name unknown datasets {unknown}; sampling from {names}")
        w = np.asarray([(cfg.weights or {}).get(n, 1.0) for n in names], dtype=np.float64)
        if names and ((w < 0).any() or w.sum() <= 0):
            raise ValueError(f"dataset weights must be >= 0 with a positive sum, got {dict(zip(names, w))}")
        self.weights = w / w.sum() if names else w
        self._split_idx = {d.name: d.indices(cfg.split) for d in self.datasets}
        for d in self.datasets:
            if self._split_idx[d.name].size == 0:
                raise ValueError(f"dataset {d.name!r} has no images in split {cfg.split!r}")
        self.augmentation = SetAugmentation(paper_across_set(), paper_within_set()) if cfg.augment else None

    # ------------------------------------------------------------------ one set
    def _real(self, rng: np.random.Generator, s: int) -> dict | None:
        cfg = self.config
        d = self.datasets[int(rng.choice(len(self.datasets), p=self.weights))]
        proto_name = d.protocol_names[int(rng.integers(len(d.protocol_names)))]
        proto = d.protocol(proto_name)
        idx = self._split_idx[d.name]
        present = proto.counts[idx] >= cfg.min_pixels  # (N_split, K)
        present[:, 0] = False  # background is not a target structure
        eligible = np.flatnonzero(present.sum(0) >= s)
        if eligible.size == 0:
            return None
        label = int(eligible[rng.integers(eligible.size)])
        pool = idx[present[:, label]]
        chosen = np.sort(rng.choice(pool, size=s, replace=False))
        labels = [label]
        maps = np.stack([np.asarray(proto.maps[i]) for i in chosen]).astype(np.int64)
        if cfg.targets == 2:
            both = np.flatnonzero((proto.counts[chosen] >= cfg.min_pixels).all(0))
            both = both[(both != 0) & (both != label)]
            if both.size == 0:
                return None
            labels.append(int(both[rng.integers(both.size)]))
        images = np.stack([np.asarray(d.images[i], dtype=np.float32) for i in chosen])
        meta = {
            "source": "real",
            "dataset": d.name,
            "protocol": proto_name,
            "labels": labels,
            "label_names": [proto.labels.get(k, str(k)) for k in labels],
            "ids": chosen.tolist(),
        }
        return {"images": images, "maps": maps, "labels": labels, "meta": meta}

    def _synthetic(self, rng: np.random.Generator, s: int) -> dict | None:
        cfg = self.config
        synth = self.synth
        if hasattr(synth, "generate"):  # SetGenerator: fresh set, index from the stream
            index = int(rng.integers(0, 2**62))
            item = synth.generate(index)
            images, maps = item.images, item.labels
        else:  # ShardDataset
            index = int(rng.integers(len(synth)))
            item = synth[index]
            images, maps = item["images"][:, 0].numpy(), item["labels"].numpy()
        if images.shape[0] < s:
            raise ValueError(f"synthetic sets hold {images.shape[0]} elements, fewer than S={s}")
        pick = np.sort(rng.choice(images.shape[0], size=s, replace=False))
        images, maps = images[pick].astype(np.float32), maps[pick].astype(np.int64)
        k = int(maps.max()) + 1
        counts = np.stack([np.bincount(m.ravel(), minlength=k) for m in maps])
        ok = np.flatnonzero((counts >= cfg.min_pixels).all(0))
        if ok.size < cfg.targets:
            return None
        labels = [int(v) for v in rng.choice(ok, size=cfg.targets, replace=False)]
        meta = {
            "source": "synth",
            "dataset": "synth",
            "protocol": "synth",
            "labels": labels,
            "label_names": [f"structure {v}" for v in labels],
            "ids": [index],
        }
        return {"images": images, "maps": maps, "labels": labels, "meta": meta}

    def sample_set(self, rng: np.random.Generator, s: int) -> dict:
        """One set of S images: images (S, 1, H, W), targets (T, S, 1, H, W), meta."""
        for _ in range(100):
            synth = self.synth is not None and rng.random() < self.config.synth_ratio
            raw = self._synthetic(rng, s) if synth else self._real(rng, s)
            if raw is not None:
                break
        else:
            raise ValueError(f"could not find a label present in S={s} images after 100 tries; lower set_size")
        images = torch.from_numpy(raw["images"])[:, None]
        targets = torch.stack([torch.from_numpy(raw["maps"] == k) for k in raw["labels"]], dim=1).float()
        if self.augmentation is not None:
            images, targets = self.augmentation(images, targets, rng)
        # (S, T, H, W) → (T, S, 1, H, W)
        return {"images": images.float(), "targets": targets.permute(1, 0, 2, 3)[:, :, None], "meta": raw["meta"]}

    def batch(self, index: int) -> dict:
        """Batch number ``index`` of the stream: a pure function of (seed, index).

        Training uses it to resume exactly: step i always sees batch i.
        """
        rng = np.random.default_rng([self.config.seed, int(index)])
        lo, hi = self.config.set_size
        s = int(rng.integers(lo, hi + 1))
        return collate_sets([self.sample_set(rng, s) for _ in range(self.config.batch_size)])

    def __iter__(self) -> Iterator[dict]:
        """Batches ``start, start + 1, …`` in order; with W DataLoader workers, worker w makes
        ``start + w + k·W`` and the DataLoader's round-robin puts them back in order."""
        info = torch.utils.data.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        if info is not None:
            torch.set_num_threads(1)  # one worker per core; intra-op threads only contend
        i = self.start + wid
        while True:
            yield self.batch(i)
            i += nw
