"""Benchmark pancakes-model on this CPU: inference, training step, peak memory, sampler forms.

Issue 22's ratios come first, all in one run: at S = 3, M = 8, K = 20, 128², 2 threads, the label
path of ``segment`` (the factored logits and their argmax, mapped to the input's grid) and
``Pancakes.forward`` (full probabilities) against the bare UNet (the model's own featurizer on the
same inputs, threads and memory format) in one process, and ``forward`` against the previous
release (``--previous``, default 8d69f14, from a ``git worktree``) in alternating fresh processes.

Targets (issue #3), 2 cores, 128×128, M=8, K=20: inference S=3 ≤ 100 ms (aim 80), S=1 ≤ 35 ms;
training step S=3 ≤ 300 ms; worst case S=5 M=15 K=40 peak RSS ≤ 1.5 GB. Writes the table into
packages/pancakes-model/README.md. ``--quick`` skips torch.compile and the slow official sampler.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import asdict

import torch
from _common import ROOT, peak_rss_mb, timeit, write_block
from einops import rearrange

from pancakes_model import Pancakes, winner_only_set_dice_loss
from pancakes_model.loss import set_dice_loss
from pancakes_model.network.reference import ConcatConvSampler, OfficialSampler

H = W = 128


def batch(s: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, s, 1, H, W, generator=g)
    y = (torch.rand(1, s, 1, H, W, generator=g) > 0.7).float()
    return x, y


def make_step(model: Pancakes, s: int, m: int, k: int, *, winner_only: bool = True):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    x, y = batch(s)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        res = winner_only_set_dice_loss(model, x, y, m, k) if winner_only else set_dice_loss(model(x, m, k), y)
        res.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    return step


def rss_child(kind: str, s: int, m: int, k: int) -> None:
    """Run one configuration in this (fresh) process and print its time and peak RSS."""
    torch.set_num_threads(2)
    torch.set_flush_denormal(True)
    model = Pancakes(Pancakes.from_pretrained().config)  # the shipped architecture (set context included)
    if kind == "train":
        model.train()
        fn = make_step(model, s, m, k)
        t = timeit(fn, repeat=3, warmup=1)
    else:
        model.eval()
        x, _ = batch(s)

        def fn() -> None:
            with torch.inference_mode():
                model(x, m, k)

        t = timeit(fn, repeat=3, warmup=1)
    print(json.dumps({"seconds": t, "peak_rss_mb": peak_rss_mb()}))


FORWARD_CODE = """
import dataclasses, json, os, statistics, sys, time, torch
torch.set_num_threads(2)
from pancakes_model import Pancakes, PancakesConfig
known = {f.name for f in dataclasses.fields(PancakesConfig)}
arch = json.loads(os.environ["PANCAKES_BENCH_ARCH"])
assert not any(v for k, v in arch.items() if k not in known), "a field the older tree lacks is switched on"
x = torch.rand(1, 3, 1, 128, 128, generator=torch.Generator().manual_seed(0))
torch.manual_seed(0)
arms = {"shipped": Pancakes.from_pretrained().eval(),
        "architecture": Pancakes(**{k: v for k, v in arch.items() if k in known}).eval()}
out = {}
with torch.inference_mode():
    for name, model in arms.items():
        times = []
        for i in range(45):
            t = time.perf_counter(); model(x, 8, 20); times.append(time.perf_counter() - t)
        out[name] = statistics.median(times[5:])
print(json.dumps(out))
"""


def previous_forward(previous: str, architecture: dict, rounds: int = 6) -> dict[str, dict[str, list[float]]]:
    """Median forward times of this tree and of ``previous`` in alternating fresh processes.

    Two arms in every process: each tree's own shipped weights (what a user of each release runs)
    and one architecture, ``architecture``, in both trees with random weights (what the code costs,
    apart from what a wider shipped network costs). Fields the older tree lacks must be off.

    Returns:
        {"shipped" | "architecture": {"previous" | "this": [seconds per round]}}.
    """
    import atexit
    import os

    from _common import scratch

    tree = scratch("bench-model-prev-") / "tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), previous], check=True,
                   capture_output=True)  # fmt: skip
    atexit.register(subprocess.run, ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                    capture_output=True)  # fmt: skip
    arch = json.dumps(architecture)
    env_this = dict(os.environ, PANCAKES_BENCH_ARCH=arch)
    env_prev = dict(env_this, PYTHONPATH=os.pathsep.join(str(p / "src") for p in (tree / "packages").iterdir()))
    times: dict[str, dict[str, list[float]]] = {"shipped": {"previous": [], "this": []},
                                                "architecture": {"previous": [], "this": []}}  # fmt: skip
    for _ in range(rounds):
        for tree_name, env in (("previous", env_prev), ("this", env_this)):
            out = subprocess.run([sys.executable, "-c", FORWARD_CODE], check=True, capture_output=True, text=True,
                                 env=env, cwd=ROOT).stdout  # fmt: skip
            for arm, seconds in json.loads(out.strip().splitlines()[-1]).items():
                times[arm][tree_name].append(seconds)
    return times


def ratios_vs_unet(model: Pancakes) -> dict[str, float]:
    """Bare UNet, label path and forward at S = 3, M = 8, K = 20, interleaved in this process."""
    import statistics

    from pancakes_data import SlicePlan
    from pancakes_model.inference.mapping import queries_to_labels

    x, _ = batch(3)
    plan = SlicePlan.for_slice((H, W), None, H)
    images = x[0].contiguous(memory_format=torch.channels_last)

    def unet() -> None:
        model.featurizer(images)

    def label_path() -> None:
        f = model.factors(x, 8, 20)
        queries_to_labels(f.q, f.key, f.bias, plan)

    def forward() -> None:
        model(x, 8, 20)

    # the label path's parts beyond the UNet: the head (queries and keys), then LogitFactors.labels
    # itself (logits and their argmax over K); its logits alone, block by block as it makes them,
    # split the two
    with torch.inference_mode():
        f = model.factors(x, 8, 20)
    flat_q = f.q.flatten(2)
    keys = rearrange(f.key, "M K D -> (K M) D")
    bias = rearrange(f.bias, "M K -> (K M) 1")
    block = 4096  # LogitFactors.labels' default block

    def head() -> None:
        model.factors(x, 8, 20)

    def labels() -> None:
        f.labels(block=block)

    def block_logits() -> None:
        for i in range(flat_q.shape[0]):
            for s0 in range(0, H * W, block):
                torch.addmm(bias, keys, flat_q[i, :, s0 : s0 + block])

    parts = (("unet", unet), ("label_path", label_path), ("forward", forward), ("featurizer_and_head", head),
             ("labels", labels), ("logits", block_logits))  # fmt: skip
    runs: dict[str, list[float]] = {name: [] for name, _ in parts}
    with torch.inference_mode():
        for _, fn in parts:
            fn()
        for _ in range(25):
            for name, fn in parts:
                t0 = time.perf_counter()
                fn()
                runs[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in runs.items()}


def in_child(kind: str, s: int, m: int, k: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(s), str(m), str(k)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--previous", default="8d69f14", help="the release forward() is compared with")
    ap.add_argument("--child", nargs=4)
    args = ap.parse_args()
    if args.child:
        kind, *nums = args.child
        rss_child(kind, *map(int, nums))
        return

    torch.set_num_threads(2)
    torch.set_flush_denormal(True)  # AdamW state sinks into denormals otherwise (perf notes)
    torch.manual_seed(0)
    # the shipped weights for inference; a fresh model of the same architecture (its set-context
    # branch included) for the training step and the sampler comparisons
    shipped = Pancakes.from_pretrained().eval()
    model = Pancakes(shipped.config).eval()
    n_params = shipped.num_parameters()
    rows: list[tuple[str, str, str]] = []
    data: dict = {"parameters": n_params}
    base = ratios_vs_unet(shipped)
    # the code's cost at this release's width: its shipped config without the parts the previous
    # release cannot build (the set-context branch, switched off in both trees)
    architecture = {**asdict(shipped.config), "label_caps": (), "set_context": 0, "context_per_image": False}
    prev = previous_forward(args.previous, architecture)
    import statistics

    paired = {arm: [t / p for t, p in zip(v["this"], v["previous"])] for arm, v in prev.items()}
    rows.append(("bare UNet S=3 (the featurizer alone)", f"{base['unet'] * 1e3:.0f} ms", ""))
    rows.append(("label path of segment S=3, M=8, K=20 (logits → argmax → input grid)",
                 f"{base['label_path'] * 1e3:.0f} ms = {base['label_path'] / base['unet']:.2f}× the bare UNet",
                 "≤ 1.1×"))  # fmt: skip
    head_ms = (base["featurizer_and_head"] - base["unet"]) * 1e3
    rows.append(("  its parts beyond the UNet: head (queries, keys) / logits (blocks of 4,096 pixels) / argmax over K",
                 f"{head_ms:.1f} / {base['logits'] * 1e3:.1f} / {(base['labels'] - base['logits']) * 1e3:.1f} ms",
                 f"≤ {0.1 * base['unet'] * 1e3:.1f} ms together (0.1× the UNet)"))  # fmt: skip
    rows.append(
        (
            "Pancakes.forward S=3, M=8, K=20 (probabilities)",
            f"{base['forward'] * 1e3:.0f} ms = {base['forward'] / base['unet']:.2f}× the bare UNet",
            "≤ 1.25×",
        )
    )
    rows.append((f"  same, vs {args.previous}, one architecture (this release's UNet, no set context) in both "
                 "trees (alternating fresh processes, median of 40 forwards each)",
                 f"{statistics.median(paired['architecture']):.2f}× "
                 f"({', '.join(f'{p:.2f}' for p in paired['architecture'])})", "≤ 1.0×"))  # fmt: skip
    rows.append((f"  same, vs {args.previous}, each tree's shipped weights (what a user of each runs)",
                 f"{statistics.median(paired['shipped']):.2f}× ({', '.join(f'{p:.2f}' for p in paired['shipped'])})",
                 ""))  # fmt: skip
    data["ratios"] = {"seconds": base, "vs_previous": prev, "previous": args.previous}

    inf = {}
    for s in (1, 3, 5):
        x, _ = batch(s)
        with torch.inference_mode():
            inf[s] = timeit(lambda x=x: shipped(x, 8, 20), repeat=9)
            unet = timeit(lambda x=x: shipped.featurizer(x[0].contiguous(memory_format=torch.channels_last)), repeat=9)
        target = {1: "≤ 35 ms", 3: "≤ 100 ms (aim 80)", 5: ""}[s]
        rows.append((f"inference S={s}, M=8, K=20", f"{inf[s] * 1e3:.0f} ms (UNet alone {unet * 1e3:.0f} ms)", target))
    data["inference_ms"] = {s: v * 1e3 for s, v in inf.items()}

    model.train()
    t_fast = timeit(make_step(model, 3, 8, 20), repeat=7)
    t_full = timeit(make_step(model, 3, 8, 20, winner_only=False), repeat=5)
    rows.append(
        ("training step S=3, M=8, K=20 (fwd+bwd+AdamW), winner-only grads", f"{t_fast * 1e3:.0f} ms", "≤ 300 ms")
    )
    rows.append(
        ("  same, gradients through all M·K maps", f"{t_full * 1e3:.0f} ms ({t_full / t_fast:.2f}× slower)", "")
    )
    data["train_step_ms"] = {"winner_only": t_fast * 1e3, "full": t_full * 1e3}

    worst = in_child("train", 5, 15, 40)
    rows.append(
        (
            "worst case training step S=5, M=15, K=40",
            f"{worst['seconds'] * 1e3:.0f} ms, peak RSS {worst['peak_rss_mb']:.0f} MB",
            "RSS ≤ 1500 MB",
        )
    )
    worst_inf = in_child("infer", 5, 15, 40)
    rows.append(
        (
            "worst case inference S=5, M=15, K=40",
            f"{worst_inf['seconds'] * 1e3:.0f} ms, peak RSS {worst_inf['peak_rss_mb']:.0f} MB",
            "",
        )
    )
    data["worst_case"] = {"train": worst, "inference": worst_inf}

    # Plain concat-form samplers behind the same UNet: the ratio is what the fast sampler buys.
    model.eval()
    x1, _ = batch(1)
    with torch.inference_mode():
        phi = model.features(x1)
        v = model.embedding(8, 20)
        t_ours = timeit(lambda: model.sampler(phi, v).softmax(2), repeat=9)
        concat = ConcatConvSampler(features=shipped.config.features, embed_dims=v.shape[-1]).eval()
        t_concat = timeit(lambda: concat(phi, v).softmax(2), repeat=3, warmup=1)
        rows.append(("sampler alone S=1, M=8, K=20: ours (query·key)", f"{t_ours * 1e3:.1f} ms", ""))
        rows.append(
            (
                "  plain concat → 3×3 conv + two 1×1 per map",
                f"{t_concat * 1e3:.0f} ms ({t_concat / t_ours:.0f}× ours)",
                "",
            )
        )
        data["sampler_ms"] = {"ours": t_ours * 1e3, "concat_conv": t_concat * 1e3}
        if not args.quick:
            official = OfficialSampler(features=shipped.config.features, embed_dims=v.shape[-1]).eval()
            t_off = timeit(lambda: official(phi, v).softmax(2), repeat=1, warmup=1)
            rows.append(
                ("  the authors' three 3×3 convs per map", f"{t_off * 1e3:.0f} ms ({t_off / t_ours:.0f}× ours)", "")
            )
            data["sampler_ms"]["official"] = t_off * 1e3

    if not args.quick:
        compiled = Pancakes(shipped.config).eval()
        t0 = time.perf_counter()
        fn = torch.compile(compiled)
        x3, _ = batch(3)
        with torch.inference_mode():
            fn(x3, 8, 20)
            compile_s = time.perf_counter() - t0
            t_comp = timeit(lambda: fn(x3, 8, 20), repeat=9)
        rows.append(
            ("inference S=3 with torch.compile", f"{t_comp * 1e3:.0f} ms (one-off compile {compile_s:.0f} s)", "")
        )
        trained = Pancakes(shipped.config).train()
        trained.compile_queries()  # what train.compile does
        step = make_step(trained, 3, 8, 20)
        t0 = time.perf_counter()
        step()
        compile_train_s = time.perf_counter() - t0
        t_step_c = timeit(step, repeat=7)
        rows.append(
            (
                "training step S=3 with compile_queries (train.compile)",
                f"{t_step_c * 1e3:.0f} ms (one-off compile {compile_train_s:.0f} s)",
                "",
            )
        )
        data["compiled_train_step_ms"] = t_step_c * 1e3
        data["compiled_inference_s3_ms"] = t_comp * 1e3
        data["compile_seconds"] = compile_s

    lines = [f"Parameters: {n_params:,}.", "", "| what | measured | target |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    write_block(ROOT / "packages" / "pancakes-model" / "README.md", "\n".join(lines), name="bench_model", data=data)


if __name__ == "__main__":
    main()
