"""CPU training throughput of the default recipe: this tree against a baseline commit, in one run.

    python benchmarks/bench_train.py [--baseline 9384e47] [--steps 30] [--rounds 3] [--threads 2]

Both arms train their own ``configs/default.toml`` (threads, workers, compile and data) with
validation off, from the same weights: the baseline commit's shipped model, passed to both as
``train.init`` (each tree's "default" is its own shipped model, and the shipped weights change
between commits). Fresh processes alternate (base, new, base, new, …) so that the machine's noise
hits both alike. The baseline's code comes from ``git worktree add`` of the
baseline commit, run with the same virtual environment (its packages first on ``PYTHONPATH``).
Steps/s counts every second of the loop (data wait included) after ``--warmup`` steps, read from
the run's own ``log.jsonl`` (``log_every = 1``). The same seed draws the same batches and the
same (S, M, K) in both arms, so the first 20 losses are compared as well: the speed-ups must not
change what is learned.

``--losses-only`` runs just that check, 20 steps each: the baseline, this tree as configured
(bfloat16 featurizer where the CPU has it) and this tree with ``train.precision = "fp32"``; it
needs no quiet machine and writes its own README block.

A second part profiles one step of the current tree phase by phase (data, forward, candidate
table, winner loss, backward, optimizer; workers = 0 so that data time is measured, not hidden).
Pause any background training while measuring. Writes the table into the pancakes-model README.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import ROOT, machine, scratch, write_block

CONFIG = ROOT / "configs" / "default.toml"
PACKAGES = ("pancakes-eval", "pancakes-data", "pancakes-synth", "pancakes-model")


def baseline_tree(commit: str) -> Path:
    """A detached worktree of ``commit`` (removed at exit)."""
    path = scratch("bench-train-base-") / "tree"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), commit], check=True, capture_output=True
    )
    import atexit

    atexit.register(
        subprocess.run, ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], capture_output=True
    )
    return path


def run_arm(tree: Path, steps: int, out: Path, extra: list[str]) -> list[dict]:
    """Train ``steps`` steps of the default recipe with ``tree``'s code; the log's train rows."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(str(tree / "packages" / p / "src") for p in PACKAGES)
    cmd = [
        sys.executable, "-m", "pancakes_model.train", "--config", str(tree / "configs" / "default.toml"), "--quiet",
        "--set", f"out.dir={out}", "--set", "val.dev=", "--set", f"train.steps={steps}",
        "--set", "train.log_every=1", "--set", "train.checkpoint_every=100000", *extra,
    ]  # fmt: skip
    subprocess.run(cmd, check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    rows = [json.loads(r) for r in (out / "log.jsonl").read_text(encoding="utf-8").splitlines() if r]
    return [r for r in rows if r["kind"] == "train"]


def steps_per_s(rows: list[dict], warmup: int) -> tuple[float, float]:
    """Steps/s after ``warmup`` steps and the share of that time spent waiting for data."""
    timed = [r for r in rows if r["step"] > warmup]
    seconds = sum(1 / r["it_per_s"] for r in timed)
    waited = sum(r["data_wait"] / r["it_per_s"] for r in timed)
    return len(timed) / seconds, waited / seconds


def profile_child(steps: int) -> None:
    """Phase split of the current tree's step (printed as one JSON line)."""
    import numpy as np
    import torch
    from einops import rearrange

    from pancakes_model.loss import _argmin_mk, candidate_table, set_soft_dice_loss
    from pancakes_model.training.config import load_config
    from pancakes_model.training.step import draw_mk, resize
    from pancakes_model.training.trainer import Trainer

    out = scratch("bench-train-prof-")
    cfg = load_config(CONFIG, [f"out.dir={out / 'run'}", "val.dev=", "train.workers=0"])
    tr = Trainer(cfg, progress=False)
    loader = iter(tr.loader())
    phases = {k: [] for k in ("data", "forward", "table", "winner", "backward", "optimizer")}
    for _ in range(steps):
        t0 = time.perf_counter()
        batch = next(loader)
        t1 = time.perf_counter()
        m, k = draw_mk(cfg.train.seed, tr.step, cfg.train.M, cfg.train.K)
        images, targets = resize(batch["images"], batch["targets"], 128)
        tr.opt.zero_grad(set_to_none=True)
        b, s = images.shape[:2]
        factors = tr.model.factors(images, m, k)
        t2 = time.perf_counter()
        table = candidate_table(factors, targets[0])
        mi, ki = _argmin_mk(table)
        t3 = time.perf_counter()
        probs = rearrange(factors.probs(mi.repeat_interleave(s)), "(B S) K H W -> B S K H W", B=b)
        loss = set_soft_dice_loss(probs[torch.arange(b), :, ki], targets[0]).mean()
        t4 = time.perf_counter()
        loss.backward()
        t5 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(tr.model.parameters(), 1.0)
        tr.opt.step()
        tr.scheduler.step()
        tr.step += 1
        t6 = time.perf_counter()
        for key, v in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5)):
            v and phases[key].append(v)
    skip = 3  # the first steps fill caches
    dtype = str(tr.model.featurizer_dtype or torch.float32).removeprefix("torch.")  # train.precision = "auto"
    print(json.dumps({"featurizer": dtype, "phases": {k: float(np.mean(v[skip:])) for k, v in phases.items()}}))


def losses_only(baseline: str, base: Path, work: Path, extra: list[str]) -> None:
    """The first 20 losses of the baseline against this tree, bf16 (as configured) and fp32."""
    ref = [r["loss"] for r in run_arm(base, 20, work / "base", extra)][:20]
    lines = [
        f"First 20 losses of `configs/default.toml`, same seed and weights, this tree − {baseline}:",
        "",
        "| this tree's featurizer | largest difference | mean difference |",
        "|---|---|---|",
    ]
    data: dict = {"baseline": baseline, "losses": {"base": ref}}
    for name, more in (('as configured (`precision = "auto"`)', []), ("float32", ["--set", "train.precision=fp32"])):
        new = [r["loss"] for r in run_arm(ROOT, 20, work / f"new-{len(data['losses'])}", [*extra, *more])][:20]
        diffs = [b - a for a, b in zip(ref, new)]
        lines.append(f"| {name} | {max(map(abs, diffs)):.2e} | {statistics.mean(diffs):+.2e} |")
        data["losses"][name] = new
    write_block(
        ROOT / "packages" / "pancakes-model" / "README.md",
        "\n".join(lines),
        name="bench_train_losses",
        data=data,
        command="benchmarks/bench_train.py --losses-only",
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default="9384e47")
    ap.add_argument("--steps", type=int, default=30, help="timed steps per process")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3, help="fresh processes per arm, alternating")
    ap.add_argument("--set", dest="extra", action="append", default=[], help="config override for both arms")
    ap.add_argument("--losses-only", action="store_true", help="only the first-20-losses check (any machine)")
    ap.add_argument("--profile-child", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.profile_child:
        profile_child(args.profile_child)
        return
    extra = [a for item in args.extra for a in ("--set", item)]
    base = baseline_tree(args.baseline)
    init = base / "packages" / "pancakes-model" / "src" / "pancakes_model" / "weights" / "pancakes-default.safetensors"
    extra += ["--set", f"train.init={init}"]  # one starting point for both arms
    work = scratch("bench-train-")
    if args.losses_only:
        losses_only(args.baseline, base, work, extra)
        return
    total = args.warmup + args.steps
    runs: dict[str, list[list[dict]]] = {"base": [], "new": []}
    for r in range(args.rounds):
        for arm, tree in (("base", base), ("new", ROOT)):
            runs[arm].append(run_arm(tree, total, work / f"{arm}-{r}", extra))
            sps, _ = steps_per_s(runs[arm][-1], args.warmup)
            print(f"round {r} {arm}: {sps:.3f} steps/s", flush=True)
    rate = {arm: [steps_per_s(rows, args.warmup) for rows in rr] for arm, rr in runs.items()}
    med = {arm: statistics.median(v[0] for v in vals) for arm, vals in rate.items()}
    wait = {arm: statistics.median(v[1] for v in vals) for arm, vals in rate.items()}
    paired = [n[0] / b[0] for b, n in zip(rate["base"], rate["new"])]
    loss_b = [r["loss"] for r in runs["base"][0][:20]]
    loss_n = [r["loss"] for r in runs["new"][0][:20]]
    max_diff = max(abs(a - b) for a, b in zip(loss_b, loss_n))

    child = json.loads(
        subprocess.run(
            [sys.executable, __file__, "--profile-child", "25"], check=True, capture_output=True, text=True, cwd=ROOT
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    prof = child["phases"]
    total_ms = sum(prof.values()) * 1e3
    lines = [
        f"`configs/default.toml` (128², batch 4, S 2–5, M 5–15, K 5–40, its threads and workers), "
        f"{args.rounds} fresh processes per arm alternating, {args.steps} timed steps each after {args.warmup}:",
        "",
        "| arm | steps/s (median) | s/step | data wait |",
        "|---|---|---|---|",
        f"| {args.baseline} | {med['base']:.3f} | {1 / med['base']:.2f} | {wait['base']:.1%} |",
        f"| this tree | {med['new']:.3f} | {1 / med['new']:.2f} | {wait['new']:.1%} |",
        "",
        f"**Speed-up {med['new'] / med['base']:.2f}×** (paired per round: "
        f"{', '.join(f'{p:.2f}×' for p in paired)}). Losses of the first 20 steps, same seed: largest "
        f"difference {max_diff:.2e}.",
        "",
        f"One step of this tree, phase by phase (mean of 22 steps, workers = 0, {child['featurizer']} featurizer; "
        f"{total_ms:.0f} ms in all):",
        "",
        "| phase | ms | share |",
        "|---|---|---|",
        *[f"| {k} | {v * 1e3:.0f} | {v * 1e3 / total_ms:.0%} |" for k, v in prof.items()],
    ]
    data = {
        "baseline": args.baseline,
        "steps_per_s": med,
        "data_wait": wait,
        "paired_ratio": paired,
        "loss_max_diff_first_20": max_diff,
        "losses_first_20": {"base": loss_b, "new": loss_n},
        "phases_s": prof,
        "machine": machine(),
    }
    write_block(ROOT / "packages" / "pancakes-model" / "README.md", "\n".join(lines), name="bench_train", data=data)


if __name__ == "__main__":
    main()
