"""The learning curve of a run, drawn with matplotlib (the ``[train]`` extra)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["draw_curve"]


def draw_curve(rows: list[dict], path: Path) -> None:
    """PNG of the training loss (smoothed, left axis) and validation Set Dice per dev family and
    their mean (right axis) against the step."""
    import matplotlib

    matplotlib.use("Agg")  # no display; also keeps tests and servers headless
    import matplotlib.pyplot as plt

    train = [(r["step"], r["loss"]) for r in rows if r.get("kind") == "train"]
    val = [r for r in rows if r.get("kind") == "val"]
    fig, ax = plt.subplots(figsize=(9, 4.2), dpi=100)
    if train:
        steps, losses = np.asarray(train).T
        k = max(1, len(losses) // 50)
        smooth = np.convolve(losses, np.ones(k) / k, mode="valid")
        ax.plot(steps, losses, color="tab:blue", alpha=0.2, lw=0.8)
        ax.plot(steps[k - 1 :], smooth, color="tab:blue", lw=1.8, label="training loss")
    ax.set_xlabel("step")
    ax.set_ylabel("set soft-Dice loss (winner)", color="tab:blue")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    if val:
        ax2 = ax.twinx()
        vs = [r["step"] for r in val]
        ax2.plot(vs, [r["val_set_dice"] for r in val], "o-", color="tab:orange", lw=2, label="val Set Dice (mean)")
        fams = sorted({k for r in val for k in r if k.startswith("val_") and k != "val_set_dice"})
        for name in fams:
            ax2.plot(vs, [r.get(name, np.nan) for r in val], "--", lw=1, label=name[4:])
        ax2.set_ylabel("validation Set Dice (M=8, K=20)", color="tab:orange")
        ax2.set_ylim(0, 1)
        ax2.legend(loc="lower right", fontsize=8)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
