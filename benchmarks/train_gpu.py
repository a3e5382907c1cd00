"""One GPU sitting that cannot be wasted (issue 23 item 5), measuring issue 22's GPU figures first.

On a machine with network (nox installs the packages and builds the store)::

    nox -s train-gpu -- --out runs/gpu-sitting --minutes 9

On the lent GPU machine (no network, ~9 minutes, at most 8 small files back), prepared here::

    python benchmarks/train_gpu.py --prepare            # writes .gpu/: the store's datasets (tar.gz)
                                                        # and the wheels the machine lacks, ≤ 56 MiB
    # device run, carry [".gpu"]:
    python3 benchmarks/train_gpu.py --unpack .gpu --out $OUT --minutes 9

What it does, in order, within ``--minutes`` of wall time:

1. **GPU figures** (first minute; skipped on a CPU unless ``--figures``): inference of the label
   path and of the full forward at S = 1 and S = 3, 128², M = 8, K = 20 (medians, synchronised),
   against the paper's Table 1 (0.10 s and 0.12 s on their GPU); ``pancakes segment`` throughput
   for 1,000 PNGs of 256²; written to ``OUT/gpu.json`` at once.
2. **Training** from the shipped weights with ``configs/gpu.toml`` (the shipped model's own
   recipe, batch 32, DataLoader workers on all but two cores, not niced): the loader alone is timed
   for up to 15 s (what the workers make with nothing training), a one-minute probe measures steps/s,
   then the schedule's cosine is fitted to the steps the time left holds (``Trainer.set_steps``);
   one line per log row with steps/s, the share of time spent waiting for data and the GPU's peak
   memory; a checkpoint every 2 minutes, flat
   (``OUT/checkpoint.safetensors``, replaced atomically: a run cut off from outside loses at most
   2 minutes). If ``OUT`` already holds a checkpoint the run resumes from it.
3. Training's figures (median steps/s, data wait, peak memory, steps) are added to ``gpu.json``.

Files in OUT (the lent machine returns at most 8): ``checkpoint.safetensors``, ``last.safetensors``,
``best.safetensors``, ``ema.safetensors`` (the moving average of the weights: the shipped recipe
sets ``train.ema``), ``log.jsonl``, ``metrics.csv``, ``curve.png``, ``gpu.json``. Back here,
``python benchmarks/train_gpu.py --report OUT/gpu.json`` writes the figures into the pancakes-model
README; the cooldown's end is judged by the stage rule (``pancakes evaluate --model
OUT/last.safetensors --compare default``) like every candidate (configs/gpu.toml says why that one).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pancakes-eval", "pancakes-data", "pancakes-synth", "pancakes-model")
# Python packages the project needs that the lent GPU machine's image lacks (its page lists the
# image); pure-Python wheels, so one download serves its Python 3.12. deepmriprep ships the atlases
# of the `atlases:deepmriprep` source (read as data, never imported).
DEVICE_WHEELS = ("nibabel==5.4.2", "deepmriprep==0.3.0")
CARRY_LIMIT = 56 * 2**20  # the machine takes 64 MiB of working tree with the carried paths
PAPER_TABLE1 = {"S=1": 0.10, "S=3": 0.12}  # seconds per forward on the paper's GPU


def _use_sources() -> None:
    """Import the project from this checkout when it is not installed (the lent machine)."""
    try:
        import pancakes_model  # noqa: F401
    except ImportError:
        sys.path[:0] = [str(ROOT / "packages" / p / "src") for p in PACKAGES]


def _store_datasets(config: Path, table: str) -> list[str]:
    """Store datasets named by the ``store:`` specs of a training config (``data.sources``) or a dev
    config (``dev.families``)."""
    cfg = tomllib.loads(config.read_text(encoding="utf-8"))
    entries = cfg.get("data", {}).get("sources", []) if table == "sources" else cfg.get("dev", {}).get("families", [])
    specs = [e["spec"] for e in entries]
    return sorted({s.split(":", 1)[1].split(";")[0] for s in specs if s.startswith("store:")})


def _dev_config(config: Path) -> Path:
    dev = tomllib.loads(config.read_text(encoding="utf-8")).get("val", {}).get("dev", "configs/dev.toml")
    return ROOT / dev


def prepare(config: Path, store: Path, dest: Path) -> None:
    """Pack what the lent machine needs into ``dest`` (git-ignored): the wheels it lacks, the store's
    datasets the config trains on, and as many of the dev families' datasets as still fit (smallest
    first; validation there leaves out the rest and says so)."""
    train = _store_datasets(config, "sources")
    dev = [d for d in _store_datasets(_dev_config(config), "families") if d not in train]
    missing = [n for n in train + dev if not (store / n / "dataset.json").is_file()]
    if missing:
        sys.exit(f"train_gpu --prepare: store {store} lacks {missing}; build it with `nox -s data`")
    shutil.rmtree(dest, ignore_errors=True)
    wheels = dest / "wheels"
    wheels.mkdir(parents=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "-d", str(wheels),
         *DEVICE_WHEELS],
        check=True,
    )  # fmt: skip
    used = _tree_bytes() + sum(f.stat().st_size for f in wheels.iterdir())
    packed, left_out = [], []
    for name in train + sorted(dev, key=lambda n: _folder_size(store / n)):
        part = dest / f"store-{name}.tar.gz"
        with tarfile.open(part, "w:gz") as tar:
            tar.add(store / name, arcname=name)
        if used + part.stat().st_size > CARRY_LIMIT and name not in train:
            part.unlink()
            left_out.append(name)
            continue
        used += part.stat().st_size
        packed.append(name)
    if used > CARRY_LIMIT:
        sys.exit(f"train_gpu --prepare: {used / 2**20:.1f} MiB to carry, over {CARRY_LIMIT / 2**20:.0f} MiB")
    print(f"{dest}: {used / 2**20:.1f} MiB with the working tree; datasets {packed}; left out (too large) {left_out}")


def _folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _tree_bytes() -> int:
    """Size of the files git sends to the lent machine (the working tree)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
    return sum((ROOT / f).stat().st_size for f in files.decode().split("\0") if f and (ROOT / f).is_file())


def unpack(src: Path, config: Path) -> tuple[Path, Path]:
    """Install the carried wheels into a scratch folder, extract the store, and write the dev config
    with the families whose data came along; returns (store, dev config)."""
    scratch = Path(tempfile.mkdtemp(prefix="pancakes-gpu-"))
    site = scratch / "site"
    wheels = sorted(str(w) for w in (src / "wheels").glob("*.whl"))
    if wheels:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
             "--target", str(site), *wheels],
            check=True,
        )  # fmt: skip
        sys.path.insert(0, str(site))
    store = scratch / "store"
    for part in sorted(src.glob("store-*.tar.gz")):
        with tarfile.open(part) as tar:
            tar.extractall(store, filter="data")
    present = {p.name for p in store.iterdir()}
    # the dev config's text, its store pointed here and the families without data dropped
    text = _dev_config(config).read_text(encoding="utf-8")
    head, *families = text.split("[[dev.families]]")
    head = "\n".join(f'store = "{store}"' if ln.startswith("store =") else ln for ln in head.splitlines())
    kept, dropped = [], []
    for block in families:
        spec = tomllib.loads(block)["spec"]
        needs = spec.split(":", 1)[1].split(";")[0] if spec.startswith("store:") else None
        (kept if needs is None or needs in present else dropped).append(block)
    if dropped:
        names = [tomllib.loads(b)["name"] for b in dropped]
        print(f"validation leaves out dev families {names}: their data did not fit the upload", flush=True)
    dev = scratch / "dev.toml"
    dev.write_text(head + "\n" + "".join("[[dev.families]]" + b for b in kept), encoding="utf-8")
    return store, dev


def _median_seconds(fn, *, sync, repeat: int = 30, warmup: int = 5) -> float:
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def figures(device: str, *, images: int) -> dict:
    """Inference at S = 1 and 3 (label path and forward) and segment throughput on ``device``."""
    import numpy as np
    import torch
    from PIL import Image

    from pancakes_model import Pancakes
    from pancakes_model.app.segment import run_segment

    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    model = Pancakes.from_pretrained("default").to(device).eval()
    out: dict = {"device": torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"}
    gen = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for s in (1, 3):
            x = torch.rand(1, s, 1, 128, 128, generator=gen).to(device)
            out[f"labels_S{s}_s"] = _median_seconds(lambda x=x: model.predict_labels(x, 8, 20), sync=sync)
            out[f"forward_S{s}_s"] = _median_seconds(lambda x=x: model(x, 8, 20), sync=sync)
    out["paper_table1_s"] = PAPER_TABLE1
    with tempfile.TemporaryDirectory(prefix="pancakes-gpu-seg-") as tmp:
        src = Path(tmp) / "in"
        src.mkdir()
        rng = np.random.default_rng(0)
        yy, xx = np.indices((256, 256))
        for i in range(images):
            c = rng.uniform(80, 176, 2)
            disk = ((yy - c[0]) ** 2 + (xx - c[1]) ** 2) < rng.uniform(30, 70) ** 2
            img = 60 + 120 * disk + rng.normal(0, 12, (256, 256))
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(src / f"img{i:04d}.png")
        quiet = {"progress": False, "log": lambda m: None, "device": device}
        run_segment([src / "img0000.png"], Path(tmp) / "warm", **quiet)
        t0 = time.perf_counter()
        run_segment([src], Path(tmp) / "out", **quiet)
        seconds = time.perf_counter() - t0
    out["segment_images"] = images
    out["segment_images_per_s"] = images / seconds
    return out


def train(
    config: Path,
    out: Path,
    *,
    deadline: float,
    checkpoint_minutes: float | None,
    overrides: list[str],
    probe_minutes: float = 0.0,
) -> dict:
    """Train until ``deadline`` (a ``time.perf_counter()`` value, less a margin for the last
    checkpoint and the curve); returns the run's result and its log figures."""
    from pancakes_model.training import checkpoint
    from pancakes_model.training.config import load_config
    from pancakes_model.training.trainer import Trainer
    from pancakes_synth import Generator

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 2
    # The workers run niced by default so that on a CPU run they fill the step's gaps without
    # preempting its threads; here the GPU computes and the main process mostly waits, so the
    # workers need not yield to it.
    os.environ.setdefault("PANCAKES_WORKER_NICE", "0")
    # the atlases' fields are built on every machine with an empty cache (50-80 s of one core on
    # the lent machine): in parallel on its idle cores
    os.environ.setdefault("PANCAKES_SYNTH_WORKERS", str(max(cores - 2, 1)))
    settings = [f'out.dir="{out}"', 'train.checkpoint_layout="flat"', "train.keep_checkpoints=1"]
    if checkpoint_minutes is not None:
        settings.append(f"train.checkpoint_minutes={checkpoint_minutes}")
    cfg = load_config(config, [f"train.workers={max(cores - 2, 1)}", *settings, *overrides])
    resume = checkpoint.latest(out) is not None
    trainer = Trainer(cfg, resume=resume, progress=False, echo=lambda line: print(line, flush=True))
    if resume:
        print(f"resuming from step {trainer.step}", flush=True)
    # Generator sources build their caches (atlas fields, texture banks) on first use; here, once, in
    # this process, before the DataLoader workers start — not in every worker while the GPU waits.
    t0 = time.perf_counter()
    for source in trainer.sources:
        if isinstance(source.data, Generator):  # store datasets are memory-mapped, nothing to build
            source.data.prepare()
    print(f"sources ready in {time.perf_counter() - t0:.1f} s", flush=True)
    # The loader alone, the main process idle: what the data route can deliver, apart from the step
    # (the first sitting waited 70 % of the time on data: the training process unpickled every
    # batch's augmentation parameters, since joined into tensors by the workers).
    data_alone = _loader_alone(trainer, seconds=min(15.0, 0.03 * (deadline - t0)))
    print(f"data alone: {data_alone:.1f} sets/s from {cfg.train.workers} workers", flush=True)
    minutes = (deadline - time.perf_counter()) / 60
    if minutes <= 0:
        raise SystemExit("train_gpu: no time left to train after the set-up")
    if probe_minutes > 0 and minutes > 2 * probe_minutes:
        # the machine's speed is learnt by running: a short probe, then the cosine is fitted to the
        # steps the time left holds (less a tenth for validation and the loader's restart), so the
        # learning rate has decayed when the time is up instead of being cut off near its peak
        first, t0 = trainer.step, time.perf_counter()
        trainer.run(max_minutes=probe_minutes)
        # the steady rate (log rows after the first: no loader start-up), else the probe's wall rate
        every = trainer.cfg.train.log_every
        steady = [r["it_per_s"] for r in trainer.log.rows() if r.get("kind") == "train" and r["step"] > first + every]
        steady = [v for v in steady if v]
        rate = statistics.median(steady) if steady else (trainer.step - first) / (time.perf_counter() - t0)
        left = deadline - time.perf_counter()
        fitted = min(trainer.cfg.train.steps, trainer.step + int(0.9 * rate * left))
        trainer.set_steps(fitted)
        print(f"probe: {rate:.2f} steps/s over {trainer.step - first} steps; the run ends at step {fitted}", flush=True)
        minutes = (deadline - time.perf_counter()) / 60
    result = trainer.run(max_minutes=minutes)
    rows = [r for r in trainer.log.rows() if r.get("kind") == "train" and r.get("it_per_s")]
    if rows:
        result["steps_per_s"] = statistics.median(r["it_per_s"] for r in rows)
        result["data_wait"] = statistics.median(r["data_wait"] for r in rows)
        result["gpu_mem_gib"] = max((r.get("gpu_mem_gib", 0.0) for r in rows), default=0.0)
        # the step alone: log windows in which the workers kept ahead (under 15 % waiting for data)
        fed = [r["it_per_s"] for r in rows if r["data_wait"] < 0.15 and r["step"] > cfg.train.log_every]
        if fed:
            result["fed_steps_per_s"] = statistics.median(fed)
    result["workers"] = cfg.train.workers
    result["data_alone_sets_per_s"] = data_alone
    result["batch_size"] = cfg.train.batch_size
    return result


def _loader_alone(trainer, *, seconds: float) -> float:
    """Sets per second the trainer's DataLoader delivers for ``seconds`` with nothing else running
    (after its first batch: the workers' start is not counted)."""
    from pancakes_model.training.data import close_loader

    loader = trainer.loader()
    try:
        batch = next(loader)
        sets_per_batch = int(batch["images"].shape[0])
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            next(loader)
            n += 1
        return n * sets_per_batch / (time.perf_counter() - t0)
    finally:
        close_loader(loader)


def report(path: Path) -> None:
    """Write a gpu.json brought back from the lent machine into the pancakes-model README."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _common import write_block

    fig = json.loads(path.read_text(encoding="utf-8"))
    f, t = fig.get("figures", {}), fig.get("training", {})
    lines = [f"GPU: {f.get('device', '?')} (the project's lent machine; figures from its first minute)", ""]
    lines += ["| what | measured | paper (Table 1, their GPU) |", "|---|---|---|"]
    for s in (1, 3):
        if f"labels_S{s}_s" in f:
            paper = PAPER_TABLE1[f"S={s}"]
            lines.append(
                f"| inference S = {s}, 128², M = 8, K = 20: labels / forward | "
                f"{f[f'labels_S{s}_s'] * 1e3:.1f} ms / {f[f'forward_S{s}_s'] * 1e3:.1f} ms | {paper:.2f} s |"
            )
    if "segment_images_per_s" in f:
        lines.append(
            f"| `pancakes segment`, {f['segment_images']} PNGs of 256² (read, segment, write) | "
            f"{f['segment_images_per_s']:.0f} images/s | |"
        )
    if "steps_per_s" in t:
        workers = f", {t['workers']} data workers" if "workers" in t else ""
        lines.append(
            f"| training, batch {t['batch_size']} at 128²{workers} | {t['steps_per_s']:.2f} steps/s, data wait "
            f"{100 * t['data_wait']:.0f} %, peak {t['gpu_mem_gib']:.1f} GiB | |"
        )
    if "data_alone_sets_per_s" in t:
        alone = t["data_alone_sets_per_s"]
        lines.append(
            f"| the data loader alone ({t.get('workers', '?')} workers, nothing training) | "
            f"{alone:.0f} sets/s = {alone / t['batch_size']:.1f} batches/s | |"
        )
    if "fed_steps_per_s" in t:
        lines.append(
            f"| the training step alone (log windows with < 15 % data wait) | {t['fed_steps_per_s']:.2f} steps/s | |"
        )
    body = "\n".join(lines)
    where = f"{f.get('device', 'a GPU')} (lent machine, 16 cores)"
    readme = ROOT / "packages" / "pancakes-model" / "README.md"
    write_block(readme, body, name="train_gpu", data=fig, command="benchmarks/train_gpu.py", where=where)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="train_gpu.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "gpu.toml")
    ap.add_argument("--out", type=Path, help="run folder: checkpoint, weights, log and gpu.json")
    ap.add_argument("--minutes", type=float, default=9.0, help="wall-clock budget, figures included")
    ap.add_argument("--checkpoint-minutes", type=float, help="checkpoint interval (default: the config's)")
    ap.add_argument("--margin-seconds", type=float, default=20.0, help="kept for the last checkpoint and exit")
    ap.add_argument("--figures", action="store_true", help="measure the inference figures on a CPU too")
    ap.add_argument("--no-figures", action="store_true", help="train only")
    ap.add_argument("--segment-images", type=int, default=1000)
    ap.add_argument(
        "--probe-minutes", type=float, default=1.0, help="measure steps/s this long, then fit the schedule (0: off)"
    )
    ap.add_argument("--prepare", action="store_true", help="pack .gpu/ for the lent machine and stop")
    ap.add_argument("--store", type=Path, default=ROOT / "data" / "store")
    ap.add_argument("--unpack", type=Path, help="a folder made by --prepare (on the lent machine)")
    ap.add_argument("--report", type=Path, help="write a gpu.json into the README and stop")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="config override (section.key=value)")
    args = ap.parse_args(argv)
    if args.prepare:
        prepare(args.config, args.store, ROOT / ".gpu")
        return 0
    if args.report:
        report(args.report)
        return 0
    if args.out is None:
        ap.error("--out is required")
    start = time.perf_counter()
    _use_sources()
    overrides = list(args.overrides)
    if args.unpack:
        store, dev = unpack(args.unpack, args.config)
        overrides[:0] = [f'data.store="{store}"', f'val.dev="{dev}"']
    import torch

    cuda = torch.cuda.is_available()
    args.out.mkdir(parents=True, exist_ok=True)
    summary: dict = {"config": str(args.config), "minutes": args.minutes}
    if (cuda or args.figures) and not args.no_figures:
        summary["figures"] = figures("cuda" if cuda else "cpu", images=args.segment_images)
        (args.out / "gpu.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
        print(json.dumps(summary["figures"]), flush=True)
    if not cuda:
        overrides.insert(0, 'train.device="cpu"')
    deadline = start + args.minutes * 60 - args.margin_seconds
    summary["training"] = train(
        args.config,
        args.out,
        deadline=deadline,
        checkpoint_minutes=args.checkpoint_minutes,
        overrides=overrides,
        probe_minutes=args.probe_minutes,
    )
    (args.out / "gpu.json").write_text(json.dumps(summary, indent=1, default=str), encoding="utf-8")
    print(json.dumps(summary["training"], default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
