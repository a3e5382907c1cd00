"""The multi-protocol set sampler (the paper's "MegaMedical set sampler with augmentations").

Each set: a source (by weight) → for a real dataset, a protocol → a target → S images in which the
target is present; for a synthetic source, one of its sets → S of its images → a target present in
all of them. The target is a union of labels at some granularity (:mod:`pancakes_data.targets`).
Synthetic images are normalised like every input at inference (``normalize_intensity``), then
the Table-3 augmentations run (across-set, then within-set).

Sources are real datasets of the store or anything with ``len(source)`` and ``source.get(i)``
returning a set (pancakes-synth's generators and shard datasets): one duck-typed interface, which
``Source`` checks once when it is built.

Batches group sets of one S (S is drawn per batch), so they stack:

    images  (B, S, 1, H, W) float32 in [0, 1]
    targets (T, B, S, 1, H, W) float32 binary; T = 1, or 2 for the appendix-D variant
    meta    list of B dicts (source, dataset, protocol, target kind, label(s), image ids)

Reproducible: batch i is a pure function of (seed, i), whatever the number of workers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from pancakes_data.preprocess import normalize_intensity
from pancakes_data.set_augment import (
    INTENSITY_FLIPS,
    SetAugmentation,
    join_params,
    paper_across_set,
    paper_within_set,
)
from pancakes_data.store import Dataset
from pancakes_data.targets import TargetMix, draw_levels, draw_target

__all__ = ["SamplerConfig", "SetSampler", "SetSource", "Source", "collate_sets"]


@runtime_checkable
class SetSource(Protocol):
    """What a synthetic source offers the sampler: a length and sets by index.

    ``get(i)`` returns an object with ``images`` (S, H, W), ``labels`` (S, H, W) and ``classes``
    ((L,) or ``None``) — :class:`pancakes_synth.SynthSet`.
    """

    def __len__(self) -> int: ...

    def get(self, index: int) -> Any: ...


@dataclass(frozen=True)
class Source:
    """One entry of the training mix.

    Attributes:
        name: shown in batch metadata and logs.
        data: a store :class:`Dataset` or a :class:`SetSource`.
        weight: relative probability that a set comes from here.
        target_mix: the target kinds of this source's sets; ``None``: the sampler's.
        intensity_flip: where this source's sets are inverted (``"image"`` or ``"set"``, see
            :class:`SamplerConfig`); ``None``: the sampler's.
    """

    name: str
    data: Any
    weight: float = 1.0
    target_mix: TargetMix | None = None
    intensity_flip: str | None = None

    def __post_init__(self) -> None:
        if not (self.weight >= 0 and np.isfinite(self.weight)):
            raise ValueError(f"source {self.name!r}: weight must be a finite number >= 0, got {self.weight}")
        if not isinstance(self.data, Dataset) and not isinstance(self.data, SetSource):
            raise TypeError(f"source {self.name!r}: {type(self.data).__name__} is neither a Dataset nor a SetSource")
        if self.intensity_flip is not None and self.intensity_flip not in INTENSITY_FLIPS:
            raise ValueError(
                f"source {self.name!r}: intensity_flip must be one of {INTENSITY_FLIPS} or None, "
                f"got {self.intensity_flip!r}"
            )


@dataclass(frozen=True)
class SamplerConfig:
    """Knobs of :class:`SetSampler`.

    Attributes:
        set_size: inclusive range of S, drawn per batch.
        batch_size: sets per batch B.
        targets: T targets per set from the same protocol (1, or 2 for appendix D: the mix's target and
            another structure of its protocol, disjoint from it).
        split: subject split of the real datasets ("train", "val", "test", "all").
        augment: apply the Table-3 augmentations.
        intensity_flip: where they invert intensities (p = 0.5): ``"image"`` — each image of a
            set on its own (Table 3), or ``"set"`` — whole sets, so a set keeps one polarity.
        defer_augmentation: only draw their parameters (``batch["augment"]``) and leave applying
            them to :meth:`SetAugmentation.apply_batch` where the batch is used (e.g. on a GPU);
            the same draws as applying at once, so both routes see the same sets.
        min_pixels: a target counts as present in an image from this many pixels on.
        target_mix: probabilities of the target kinds.
        protocols: only these protocols of the real datasets (``None``: all of them).
        seed: master seed.
    """

    set_size: tuple[int, int] = (2, 5)
    batch_size: int = 1
    targets: int = 1
    split: str = "train"
    augment: bool = True
    intensity_flip: str = "image"
    defer_augmentation: bool = False
    min_pixels: int = 10
    target_mix: TargetMix = field(default_factory=TargetMix)
    protocols: tuple[str, ...] | None = None
    seed: int = 0


def collate_sets(items: Sequence[dict]) -> dict:
    """Stack sets of equal S into a batch (see module docstring)."""
    sizes = {it["images"].shape[0] for it in items}
    if len(sizes) != 1:
        raise ValueError(f"a batch must hold sets of one size S, got {sorted(sizes)}")
    batch = {
        "images": torch.stack([it["images"] for it in items]),
        "targets": torch.stack([it["targets"] for it in items], dim=1),
        "meta": [it["meta"] for it in items],
    }
    if "augment" in items[0]:  # parameters drawn per set, applied later to the whole batch
        batch["augment"] = join_params([it["augment"] for it in items])
    return batch


def _as_source(item: Any) -> Source:
    if isinstance(item, Source):
        return item
    name = getattr(item, "name", None) or getattr(item, "spec", None) or type(item).__name__
    return Source(str(name), item)


class SetSampler(torch.utils.data.IterableDataset):
    """Endless batches of sets (use with ``DataLoader(sampler, batch_size=None, num_workers=...)``).

    Args:
        sources: :class:`Source` entries, or bare datasets / set sources (weight 1 each).
        config: sampling knobs.
        start: index of the first batch the iterator yields (to resume a run).
        sets: the set indices of every batch the iterator yields (a distributed rank's share;
            default all).
    """

    def __init__(
        self,
        sources: Sequence[Any],
        *,
        config: SamplerConfig | None = None,
        start: int = 0,
        sets: Sequence[int] | None = None,
    ) -> None:
        self.start = int(start)
        self.sets = None if sets is None else list(sets)
        self.config = cfg = config or SamplerConfig()
        lo, hi = cfg.set_size
        if not 1 <= lo <= hi:
            raise ValueError(f"set_size must be a range 1 <= lo <= hi, got {cfg.set_size}")
        if cfg.targets not in (1, 2):
            raise ValueError(f"targets (T) must be 1 or 2, got {cfg.targets}")
        if cfg.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {cfg.batch_size}")
        self.sources = [_as_source(s) for s in sources]
        if not self.sources:
            raise ValueError("nothing to sample from: no sources")
        w = np.asarray([s.weight for s in self.sources], dtype=np.float64)
        if w.sum() <= 0:
            raise ValueError(
                f"source weights must have a positive sum, got {[(s.name, s.weight) for s in self.sources]}"
            )
        self.weights = w / w.sum()
        self._split_idx = {}
        self._protocols = {}
        for s in self.sources:
            if isinstance(s.data, Dataset):
                idx = s.data.indices(cfg.split)
                if idx.size == 0:
                    raise ValueError(f"dataset {s.data.name!r} has no images in split {cfg.split!r}")
                self._split_idx[s.name] = idx
                names = s.data.protocol_names
                if cfg.protocols is not None:
                    names = [p for p in names if p in cfg.protocols]
                    if not names:
                        raise ValueError(
                            f"dataset {s.data.name!r} has none of the protocols {list(cfg.protocols)}; "
                            f"it has {s.data.protocol_names}"
                        )
                self._protocols[s.name] = names
        flips = {cfg.intensity_flip} | {s.intensity_flip for s in self.sources if s.intensity_flip is not None}
        # one augmentation per flip mode in use; the lists check the mode, with augment off too.
        # Every mode's lists have the same layout (set_augment.flip_slot), so deferred parameters
        # of a batch mixing modes are applied by any one of them (:attr:`augmentation`).
        self._augmentations = {
            flip: SetAugmentation(paper_across_set(intensity_flip=flip), paper_within_set(intensity_flip=flip))
            for flip in sorted(flips)
        }
        self.augmentation = self._augmentations[cfg.intensity_flip] if cfg.augment else None

    # ------------------------------------------------------------------ one set
    def _mix(self, src: Source) -> TargetMix:
        return src.target_mix if src.target_mix is not None else self.config.target_mix

    def _augmentation(self, src: Source) -> SetAugmentation | None:
        """The augmentation of this source's sets (its own intensity-flip mode, else the sampler's)."""
        if self.augmentation is None or src.intensity_flip is None:
            return self.augmentation
        return self._augmentations[src.intensity_flip]

    def _second(self, rng: np.random.Generator, maps: np.ndarray, first: list[int]) -> list[int] | None:
        """Appendix D's second structure of the first target's protocol: another label that every
        image shows (the background included: a whole-foreground target pairs with it), else the
        rest of the image. The first target keeps the mix's granularity, so the pair asks one
        protocol to separate what a coarser one would merge (two grey classes, a parcel and its
        neighbours, nuclei and background)."""
        counts = np.stack([np.bincount(m.ravel(), minlength=int(maps.max()) + 1) for m in maps])
        shown = np.flatnonzero((counts >= self.config.min_pixels).all(0))
        shown = shown[~np.isin(shown, first)]
        if shown.size:
            return [int(shown[rng.integers(shown.size)])]
        rest = np.setdiff1d(np.flatnonzero(counts.sum(0)), first)
        enough = (counts[:, rest].sum(1) >= self.config.min_pixels).all()
        return rest.tolist() if rest.size and enough else None

    def _real(self, rng: np.random.Generator, src: Source, s: int) -> dict | None:
        cfg, d = self.config, src.data
        names = self._protocols[src.name]
        proto_name = names[int(rng.integers(len(names)))]
        proto = d.protocol(proto_name)
        idx = self._split_idx[src.name]
        present = proto.counts[idx] >= cfg.min_pixels  # (N_split, K)
        present[:, 0] = False  # images are chosen by a structure they show
        eligible = np.flatnonzero(present.sum(0) >= s)
        if eligible.size == 0:
            return None
        anchor = int(eligible[rng.integers(eligible.size)])
        chosen = np.sort(rng.choice(idx[present[:, anchor]], size=s, replace=False))
        maps = np.stack([np.asarray(proto.maps[i]) for i in chosen]).astype(np.int64)
        picked = draw_target(rng, maps, mix=self._mix(src), min_pixels=cfg.min_pixels)
        if picked is None:
            return None
        kind, labels = picked
        images = np.stack([np.asarray(d.images[i], dtype=np.float32) for i in chosen])
        names = [proto.labels.get(k, str(k)) for k in labels]
        meta = {"source": src.name, "dataset": d.name, "protocol": proto_name, "ids": chosen.tolist()}
        return {"images": images, "maps": maps, "kind": kind, "labels": labels, "names": names, "meta": meta}

    def _synthetic(self, rng: np.random.Generator, src: Source, s: int) -> dict | None:
        cfg = self.config
        index = int(rng.integers(len(src.data)))
        item = src.data.get(index)
        images, maps = np.asarray(item.images), np.asarray(item.labels)
        if images.shape[0] < s:
            raise ValueError(f"source {src.name!r} has sets of {images.shape[0]} images, fewer than S={s}")
        pick = np.sort(rng.choice(images.shape[0], size=s, replace=False))
        images, maps = images[pick].astype(np.float32), maps[pick].astype(np.int64)
        images = np.stack([normalize_intensity(im) for im in images])  # as every input at inference
        picked = draw_target(rng, maps, classes=item.classes, mix=self._mix(src), min_pixels=cfg.min_pixels)
        if picked is None:
            return None
        kind, labels = picked
        meta = {"source": src.name, "dataset": src.name, "protocol": "synth", "ids": [index]}
        names = [f"structure {v}" for v in labels]
        return {"images": images, "maps": maps, "kind": kind, "labels": labels, "names": names, "meta": meta}

    def _levels(self, rng: np.random.Generator, src: Source, raw: dict) -> dict:
        """With the mix's ``levels`` share, the set's target becomes one class of its own
        intensities instead of its labels (:func:`~pancakes_data.targets.draw_levels`). A mix
        without ``levels`` draws nothing here, so existing recipes see the same sets."""
        w = self._mix(src).weights()
        if w["levels"] <= 0 or rng.random() >= w["levels"] / sum(w.values()):
            return raw
        drawn = draw_levels(rng, raw["images"], min_pixels=self.config.min_pixels)
        if drawn is None:
            return raw
        maps, labels = drawn
        names = [f"intensity class {labels[0]} of {int(maps.max())}"]
        return {**raw, "maps": maps, "kind": "levels", "labels": labels, "names": names}

    def sample_set(self, rng: np.random.Generator, s: int) -> dict:
        """One set of S images: images (S, 1, H, W), targets (T, S, 1, H, W), meta."""
        for _ in range(100):
            src = self.sources[int(rng.choice(len(self.sources), p=self.weights))]
            raw = self._real(rng, src, s) if isinstance(src.data, Dataset) else self._synthetic(rng, src, s)
            if raw is None:
                continue
            raw = self._levels(rng, src, raw)
            groups = [raw["labels"]]
            if self.config.targets == 2:
                second = self._second(rng, raw["maps"], raw["labels"])
                if second is None:
                    continue
                groups.append(second)
            break
        else:
            raise ValueError(f"could not find a label present in S={s} images after 100 tries; lower set_size")
        images = torch.from_numpy(raw["images"])[:, None]
        targets = torch.stack([torch.from_numpy(np.isin(raw["maps"], g)) for g in groups], dim=1).float()
        deferred, augmentation = None, self._augmentation(src)
        if augmentation is not None and self.config.defer_augmentation:
            deferred = augmentation.sample(rng, images.shape[0])
        elif augmentation is not None:
            images, targets = augmentation(images, targets, rng)
        meta = {
            **raw["meta"],
            "target": raw["kind"],
            "labels": groups[0],
            **({"second_labels": groups[1]} if self.config.targets == 2 else {}),
            "label_names": raw["names"],
        }
        # (S, T, H, W) → (T, S, 1, H, W)
        out = {"images": images.float(), "targets": targets.permute(1, 0, 2, 3)[:, :, None], "meta": meta}
        if deferred is not None:
            out["augment"] = deferred
        return out

    def batch(self, index: int, sets: Sequence[int] | None = None) -> dict:
        """Batch number ``index`` of the stream: a pure function of (seed, index).

        S is drawn from (seed, index) and set i of the batch from (seed, index, i), so a
        distributed run can make only its own share (``sets``: the set indices wanted, default
        all ``batch_size``) and together the ranks see exactly the single-process batch. Training
        uses it to resume exactly: step i always sees batch i.
        """
        lo, hi = self.config.set_size
        s = int(np.random.default_rng([self.config.seed, int(index)]).integers(lo, hi + 1))
        wanted = range(self.config.batch_size) if sets is None else sets
        return collate_sets(
            [self.sample_set(np.random.default_rng([self.config.seed, int(index), int(i)]), s) for i in wanted]
        )

    def __iter__(self) -> Iterator[dict]:
        """Batches ``start, start + 1, …`` in order; with W DataLoader workers, worker w makes
        ``start + w + k·W`` and the DataLoader's round-robin puts them back in order."""
        info = torch.utils.data.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        if info is not None:
            torch.set_num_threads(1)  # one worker per core; intra-op threads only contend
            # A forked worker inherits the parent's flush-to-zero (a trainer sets it for its
            # optimizer). Sets are made with IEEE arithmetic, as in a process that made them
            # alone: under the flush, scipy's cKDTree recursed until a worker's stack overflowed
            # (a segmentation fault that stopped training at one fixed batch).
            torch.set_flush_denormal(False)
        i = self.start + wid
        while True:
            yield self.batch(i, sets=self.sets)
            i += nw
