"""``pancakes finetune``: adapt the model to a few annotated images in minutes on a CPU.

    pancakes finetune --images DIR --labels DIR --out WEIGHTS.safetensors [--minutes 5]

Pairs images and label maps by stem (every format ``pancakes segment`` reads), splits the pairs
into train / validation / test (seeded, at least one each), prepares them like every training set
(the model grid, labels label by label), and continues the base model with the paper's set loss on
sets drawn from the training pairs — mixed with synthetic sets (a quarter each of procedural and
population scenes) so the model keeps proposing other protocols. The checkpoint best on the
validation pairs is kept; Set Dice on the **test** pairs is printed before and after, and the dev
families (``configs/dev.toml`` when present, else the held-out synthetic families) are scored
before and after: a pooled drop above 0.02 is reported as forgetting.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from pancakes_data import DEFAULT_PREPROCESS, DatasetWriter, SlicePlan
from pancakes_data.io import INPUT_SUFFIXES, collect_inputs, read_input, read_labels, ref_name, stem_of, suffix_of
from pancakes_model.network import Pancakes, resolve, save_weights, sha256
from pancakes_model.training.config import ConfigError, OutConfig, SourceEntry, TrainConfig, TrainSection, ValConfig
from pancakes_model.training.config import DataConfig as DataSection
from pancakes_model.training.devset import GENERATED_FAMILIES, DevConfig, DevFamily, load_dev
from pancakes_model.training.stagerule import FORGETTING, forgets
from pancakes_model.training.trainer import Trainer
from pancakes_model.training.validation import family_scores

__all__ = ["run_finetune"]


def _pairs(images: Path, labels: Path) -> list[tuple[object, Path]]:
    refs = collect_inputs([images])
    by_stem = {}
    for f in sorted(labels.iterdir()) if labels.is_dir() else []:
        if f.is_file() and suffix_of(f) in INPUT_SUFFIXES:
            by_stem[stem_of(f)] = f
    pairs = [(r, by_stem[ref_name(r)]) for r in refs if ref_name(r) in by_stem]
    missing = [ref_name(r) for r in refs if ref_name(r) not in by_stem]
    if missing:
        print(f"note: no label map for {missing[:5]}{' …' if len(missing) > 5 else ''}: left out", file=sys.stderr)
    return pairs


def _slices(image: np.ndarray, labels: np.ndarray, kind: str, limit: int = 24):
    """2D (image, labels) slices of a pair: the image itself, or a volume's labelled slices along each axis."""
    if kind == "2d":
        yield image, labels
        return
    for axis in range(3):
        present = [i for i in range(labels.shape[axis]) if np.take(labels, i, axis=axis).any()]
        for i in present[:: max(1, len(present) // (limit // 3))][: limit // 3]:
            yield np.take(image, i, axis=axis), np.take(labels, i, axis=axis)


def _write_split(store: Path, name: str, pairs, size: int) -> int:
    writer = None
    count = 0
    for ref, label_path in pairs:
        item, lab = read_input(ref), read_labels(label_path)
        if lab.data.shape != item.data.shape:
            raise ConfigError(f"{label_path} has shape {lab.data.shape}, its image {item.data.shape}")
        labels = np.rint(lab.data).astype(np.int64)
        norm = DEFAULT_PREPROCESS.normalize(item.data, modality=item.modality)
        for img2d, lab2d in _slices(norm, labels, item.kind):
            spacing = tuple(item.spacing[:2]) if item.spacing and item.kind == "2d" else None
            plan = SlicePlan.for_slice(img2d.shape, spacing, size)
            if writer is None:
                writer = DatasetWriter(store, name, protocols={"labels": {}}, modality="finetune", overwrite=True)
            writer.add(plan.forward(img2d), {"labels": plan.forward_labels(lab2d)}, subject=item.stem)
            count += 1
    if writer is None:
        raise ConfigError(f"no labelled slices for the {name} split")
    writer.close(splits={"train": sorted(set(writer.subjects)), "val": [], "test": []})
    return count


def _score(weights, families, *, store: Path, s_of, n: int, seed: int) -> dict[str, float]:
    return family_scores(Pancakes.from_pretrained(weights), families, s_of=s_of, n=n, seed=seed, store=store)


def _config(base: Path, store: Path, work: Path, counts: dict, *, steps: int, seed: int, val_sets: int) -> TrainConfig:
    """The fine-tuning run: the training pairs (weight 2) mixed with synthetic sets so the model keeps
    proposing other protocols, validated on ``val_sets`` sets of the validation pairs."""
    return TrainConfig(
        train=TrainSection(
            steps=steps, init=str(base), lr=1e-4, warmup=20, curriculum=((1.0, 128),), seed=seed,
            threads=torch.get_num_threads(), workers=1, checkpoint_every=max(steps, 1), log_every=10,
            S=(min(2, counts["train"]), min(5, counts["train"])),
        ),
        data=DataSection(
            store=str(store),
            sources=(SourceEntry("store:finetune-train", 2.0), SourceEntry("procedural", 0.5),
                     SourceEntry("scenes:populations", 0.5)),
        ),
        val=ValConfig(dev=str(work / "dev.toml"), every=25, sets=val_sets, S=min(3, counts["val"])),
        out=OutConfig(dir=str(work / "run")),
    )  # fmt: skip


def run_finetune(
    images: str | Path,
    labels: str | Path,
    out: str | Path,
    *,
    minutes: float = 5.0,
    steps: int = 100_000,
    base: str = "default",
    seed: int = 0,
    dev: str | Path = "configs/dev.toml",
    force: bool = False,
    score_sets: int = 20,
    log=lambda msg: print(msg, file=sys.stderr),
) -> dict:
    """The ``pancakes finetune`` command as a function; returns the summary it prints.

    ``score_sets``: sets per family for the before/after scores (test pairs and dev families); the
    validation that picks the best checkpoint uses as many, at most 8.
    """
    out = Path(out)
    if out.suffix != ".safetensors":
        raise ConfigError(f"--out must be a .safetensors file, got {out.name}")
    if out.exists() and not force:
        raise ConfigError(f"--out {out} exists; pass --force to replace it")
    work = out.with_name(f".{out.stem}.finetune-work")
    shutil.rmtree(work, ignore_errors=True)
    try:  # before any work: a read-only folder is found at once
        work.mkdir(parents=True)
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot write in {out.parent} ({exc.strerror or exc})") from exc
    base_path = resolve(base)
    try:
        pairs = _pairs(Path(images), Path(labels))
        if len(pairs) < 3:
            raise ConfigError(
                f"{len(pairs)} image/label pair(s) found by stem; at least 3 are needed (train, validation, test)"
            )
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    rng = np.random.default_rng(seed)
    order = [pairs[i] for i in rng.permutation(len(pairs))]
    n_test = n_val = max(1, round(0.2 * len(pairs)))
    split = {"test": order[:n_test], "val": order[n_test : n_test + n_val], "train": order[n_test + n_val :]}
    store = work / "store"
    try:
        counts = {k: _write_split(store, f"finetune-{k}", v, 128) for k, v in split.items()}
        sizes = {k: len(v) for k, v in split.items()}
        log(f"pairs: {sizes['train']} train, {sizes['val']} validation, {sizes['test']} test ({counts} slices)")
        mine = {k: DevFamily(f"finetune-{k}", f"store:finetune-{k}", "structure") for k in ("val", "test")}
        (work / "dev.toml").write_text(
            f'[dev]\nstore = "{store}"\n[[dev.families]]\nname = "validation"\nspec = "store:finetune-val"\n',
            encoding="utf-8",
        )

        def set_size(fam: DevFamily) -> int:  # the pairs of a split allow at most this many per set
            return min(3, counts["test" if fam.name == "finetune-test" else "val"])

        before = _score(base_path, [mine["test"]], store=store, s_of=set_size, n=score_sets, seed=seed)["finetune-test"]
        dev_cfg = load_dev(dev) if Path(dev).is_file() else DevConfig(GENERATED_FAMILIES)
        fams = [
            f
            for f in dev_cfg.families
            if not f.spec.startswith("store:") or (Path(dev_cfg.store) / f.spec[6:]).is_dir()
        ]
        dev_before = _score(
            base_path, fams, store=Path(dev_cfg.store), s_of=lambda f: 3, n=score_sets, seed=dev_cfg.seed
        )
        # the validation that picks the best checkpoint is no larger than the scores the user asked for
        cfg = _config(base_path, store, work, counts, steps=steps, seed=seed, val_sets=min(8, score_sets))
        t0 = time.perf_counter()
        result = Trainer(cfg, progress=True).run(max_minutes=minutes)
        best = work / "run" / "best.safetensors"
        after = _score(best, [mine["test"]], store=store, s_of=set_size, n=score_sets, seed=seed)["finetune-test"]
        dev_after = _score(best, fams, store=Path(dev_cfg.store), s_of=lambda f: 3, n=score_sets, seed=dev_cfg.seed)
        drop = float(np.mean(list(dev_before.values())) - np.mean(list(dev_after.values()))) if fams else 0.0
        model = Pancakes.from_pretrained(best)
        summary = {
            "base": str(base),
            "base_sha256": sha256(base_path),
            "pairs": {k: len(v) for k, v in split.items()},
            "slices": counts,
            "steps": int(result["step"]),
            "minutes": round((time.perf_counter() - t0) / 60, 2),
            "test_set_dice_before": round(before, 4),
            "test_set_dice_after": round(after, 4),
            "dev_before": {k: round(v, 4) for k, v in dev_before.items()},
            "dev_after": {k: round(v, 4) for k, v in dev_after.items()},
            "dev_pooled_drop": round(drop, 4),
            "forgetting": forgets(drop),
        }
        save_weights(model, out, provenance={**model.provenance, "finetune": summary})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"test Set Dice (M=8, K=20): {before:.3f} before → {after:.3f} after, {summary['steps']} steps")
    verdict = f"FORGETTING: more than {FORGETTING}" if summary["forgetting"] else f"within {FORGETTING}"
    log(f"dev families, pooled Set Dice drop: {drop:+.3f} ({verdict})")
    return summary
