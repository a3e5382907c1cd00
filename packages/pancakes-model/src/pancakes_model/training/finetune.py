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

import argparse
import json
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pancakes_model.training.devset import DevConfig, DevFamily, family_sets

__all__ = ["build_parser", "run_finetune", "run_from_args"]

FORGETTING = 0.02


def _pairs(images: Path, labels: Path) -> list[tuple[object, Path]]:
    from pancakes_data.io import INPUT_SUFFIXES, collect_inputs, ref_name

    refs = collect_inputs([images])
    by_stem = {}
    for f in sorted(labels.iterdir()) if labels.is_dir() else []:
        from pancakes_data.io import stem_of, suffix_of

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
    from pancakes_data import DEFAULT_PREPROCESS, DatasetWriter, SlicePlan
    from pancakes_data.io import read_input, read_labels

    writer = None
    count = 0
    for ref, label_path in pairs:
        item, lab = read_input(ref), read_labels(label_path)
        if lab.data.shape != item.data.shape:
            raise ValueError(f"{label_path} has shape {lab.data.shape}, its image {item.data.shape}")
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
        raise ValueError(f"no labelled slices for the {name} split")
    writer.close(splits={"train": sorted(set(writer.subjects)), "val": [], "test": []})
    return count


def _score(weights, families: Sequence[DevFamily], *, store: Path, s_of, n: int, seed: int) -> dict[str, float]:
    from pancakes_eval import compute_set_dice
    from pancakes_model.network import Pancakes

    model = Pancakes.from_pretrained(weights)
    out = {}
    for fam in families:
        scores = []
        for b in family_sets(fam, s=s_of(fam), n=n, seed=seed, store=store):
            lab = model.predict_labels(b["images"], 8, 20)[0].numpy()
            scores.append(compute_set_dice(lab, b["targets"][0, 0, :, 0].numpy() > 0.5, num_labels=20).score)
        out[fam.name] = float(np.mean(scores))
    return out


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

    ``score_sets``: sets per family for the before/after scores (test pairs and dev families).
    """
    import dataclasses

    import torch

    from pancakes_model.network import Pancakes, resolve
    from pancakes_model.network.weights import save_weights
    from pancakes_model.training.config import load_config
    from pancakes_model.training.devset import load_dev
    from pancakes_model.training.trainer import Trainer

    out = Path(out)
    if out.suffix != ".safetensors":
        raise ValueError(f"--out must be a .safetensors file, got {out.name}")
    if out.exists() and not force:
        raise ValueError(f"--out {out} exists; pass --force to replace it")
    base_path = resolve(base)
    pairs = _pairs(Path(images), Path(labels))
    if len(pairs) < 3:
        raise ValueError(
            f"{len(pairs)} image/label pair(s) found by stem; at least 3 are needed (train, validation, test)"
        )
    rng = np.random.default_rng(seed)
    order = [pairs[i] for i in rng.permutation(len(pairs))]
    n_test = n_val = max(1, round(0.2 * len(pairs)))
    split = {"test": order[:n_test], "val": order[n_test : n_test + n_val], "train": order[n_test + n_val :]}
    work = out.with_name(f".{out.stem}.finetune-work")
    shutil.rmtree(work, ignore_errors=True)
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
        s_of = lambda fam: min(3, counts["test" if fam.name == "finetune-test" else "val"])  # noqa: E731
        before = _score(base_path, [mine["test"]], store=store, s_of=s_of, n=score_sets, seed=seed)["finetune-test"]
        dev_cfg = (
            load_dev(dev)
            if Path(dev).is_file()
            else DevConfig(
                (DevFamily("spots-foreground", "heldout:spots", "foreground"), DevFamily("mosaic", "heldout:mosaic")),
            )
        )
        fams = [
            f
            for f in dev_cfg.families
            if not f.spec.startswith("store:") or (Path(dev_cfg.store) / f.spec[6:]).is_dir()
        ]
        dev_before = _score(
            base_path, fams, store=Path(dev_cfg.store), s_of=lambda f: 3, n=score_sets, seed=dev_cfg.seed
        )
        cfg = load_config(
            None,
            [
                f"train.steps={steps}",
                f'train.init="{base_path}"',
                "train.lr=1e-4",
                "train.warmup=20",
                "train.curriculum=[[1.0, 128]]",
                f"train.seed={seed}",
                f"train.threads={torch.get_num_threads()}",
                "train.workers=1",
                f"train.checkpoint_every={max(steps, 1)}",
                "train.log_every=10",
                'data.sources=[{spec = "store:finetune-train", weight = 2.0}, {spec = "procedural", weight = 0.5}, '
                '{spec = "scenes:populations", weight = 0.5}]',
                f'data.store="{store}"',
                f'val.dev="{work / "dev.toml"}"',
                "val.every=25",
                "val.sets=8",
                f"val.S={min(3, counts['val'])}",
                f'out.dir="{work / "run"}"',
            ],
        )
        cfg = dataclasses.replace(
            cfg, train=dataclasses.replace(cfg.train, S=(min(2, counts["train"]), min(5, counts["train"])))
        )
        t0 = time.perf_counter()
        result = Trainer(cfg, progress=True).run(max_minutes=minutes)
        best = work / "run" / "best.safetensors"
        after = _score(best, [mine["test"]], store=store, s_of=s_of, n=score_sets, seed=seed)["finetune-test"]
        dev_after = _score(best, fams, store=Path(dev_cfg.store), s_of=lambda f: 3, n=score_sets, seed=dev_cfg.seed)
        drop = float(np.mean(list(dev_before.values())) - np.mean(list(dev_after.values()))) if fams else 0.0
        from pancakes_model.app.segment import sha256

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
            "forgetting": drop > FORGETTING,
        }
        save_weights(model, out, provenance={**model.provenance, "finetune": summary})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"test Set Dice (M=8, K=20): {before:.3f} before → {after:.3f} after, {summary['steps']} steps")
    verdict = "FORGETTING: more than 0.02" if summary["forgetting"] else f"within {FORGETTING}"
    log(f"dev families, pooled Set Dice drop: {drop:+.3f} ({verdict})")
    return summary


def build_parser(ap: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    ap = ap or argparse.ArgumentParser(prog="pancakes finetune", description=__doc__.split("\n")[0])
    fmt = argparse.ArgumentDefaultsHelpFormatter
    ap.formatter_class = fmt
    ap.add_argument("--images", type=Path, required=True, help="folder of images")
    ap.add_argument("--labels", type=Path, required=True, help="folder of label maps, named like the images")
    ap.add_argument("--out", type=Path, required=True, help="the fine-tuned weights (.safetensors)")
    ap.add_argument("--minutes", type=float, default=5.0, help="training time")
    ap.add_argument("--steps", type=int, default=100_000, help="at most this many steps")
    ap.add_argument("--model", default="default", help="the base weights ('default': the shipped model)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the split and the training draws")
    ap.add_argument("--dev", type=Path, default=Path("configs/dev.toml"), help="dev config for the forgetting check")
    ap.add_argument("--score-sets", type=int, default=20, help="sets per family for the before/after scores")
    ap.add_argument("--force", action="store_true", help="replace an existing --out file")
    return ap


def run_from_args(args: argparse.Namespace) -> int:
    try:
        if args.minutes <= 0 or args.steps < 1 or args.score_sets < 1:
            raise ValueError("--minutes must be > 0, --steps and --score-sets >= 1")
        summary = run_finetune(
            args.images,
            args.labels,
            args.out,
            minutes=args.minutes,
            steps=args.steps,
            base=args.model,
            seed=args.seed,
            dev=args.dev,
            force=args.force,
            score_sets=args.score_sets,
        )
    except (FileNotFoundError, ValueError) as exc:
        print(f"pancakes finetune: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=1))
    return 0
