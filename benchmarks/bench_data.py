"""Benchmark pancakes-data: sets per second from the sampler (S=5, 128×128, Table-3 augmentations,
half synthetic) with 2 DataLoader workers, against the sets per second a training step consumes
(S=5, M=8, K=20, same machine). Target (issue #5): ≥ 5×.

Uses the packaged-brain store in ``data/store`` when it exists (``nox -s data``), otherwise a
fake one built in a temporary folder.
"""

from __future__ import annotations

import time

import torch
from _common import ROOT, scratch, timeit, write_block

from pancakes_data import SamplerConfig, SetSampler, Store
from pancakes_data.testing import write_fake_brain_packages
from pancakes_model import Pancakes, winner_only_set_dice_loss
from pancakes_synth import ProceduralSource, SetGenerator


def main() -> None:
    tmp = scratch("bench-data-")
    store_dir = ROOT / "data" / "store"
    if not (store_dir.is_dir() and any(store_dir.iterdir())):
        from pancakes_data import import_brain_packages

        store_dir = tmp / "store"
        import_brain_packages(store_dir, folders=write_fake_brain_packages(tmp / "pkgs"), slices_per_axis=8)
    datasets = list(Store(store_dir))
    gen = SetGenerator(ProceduralSource(cache_dir=tmp / "cache"), set_size=5, seed=0)
    _ = gen.bank
    cfg = SamplerConfig(set_size=(5, 5), batch_size=1, synth_ratio=0.5, split="all", seed=0)
    loader = torch.utils.data.DataLoader(SetSampler(datasets, synth=gen, config=cfg), batch_size=None, num_workers=2)
    it = iter(loader)
    for _ in range(8):  # warm-up (worker start, first structures)
        next(it)
    n = 120
    t0 = time.perf_counter()
    for _ in range(n):
        next(it)
    sets_per_s = n / (time.perf_counter() - t0)
    del it, loader

    torch.set_num_threads(2)
    torch.set_flush_denormal(True)
    model = Pancakes().train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    x = torch.rand(1, 5, 1, 128, 128)
    y = (torch.rand(1, 5, 1, 128, 128) > 0.7).float()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        winner_only_set_dice_loss(model, x, y, 8, 20).loss.backward()
        opt.step()

    step_s = timeit(step, repeat=5)
    ratio = sets_per_s * step_s
    lines = [
        f"Datasets: {', '.join(d.name for d in datasets)} (+ procedural synthetic sets, 50 %).",
        "",
        "| what | measured |",
        "|---|---|",
        f"| sampler + augmentations, S=5, 2 workers | {sets_per_s:.1f} sets/s |",
        f"| training step S=5, M=8, K=20 (consumes 1 set) | {step_s * 1e3:.0f} ms → {1 / step_s:.1f} sets/s |",
        f"| ratio supply / demand | {ratio:.1f}× (target ≥ 5×: {'met' if ratio >= 5 else 'NOT met'}) |",
        "",
        "Both measured on the same 2 cores, one after the other (in training they share the cores).",
    ]
    write_block(
        ROOT / "packages" / "pancakes-data" / "README.md",
        "\n".join(lines),
        name="bench_data",
        data={"sets_per_s": sets_per_s, "train_step_s": step_s, "ratio": ratio},
    )


if __name__ == "__main__":
    main()
