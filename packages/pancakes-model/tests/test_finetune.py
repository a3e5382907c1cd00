"""pancakes finetune: a few steps write loadable weights that name their base model (issue 16)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import Image

from pancakes_model import Pancakes
from pancakes_model.app.cli import main
from pancakes_model.network import resolve

pytest.importorskip("pancakes_synth")
pytest.importorskip("pancakes_eval")


@pytest.mark.slow
def test_a_short_finetune_writes_weights_that_name_the_base_model(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/dev.toml here: the held-out families check forgetting
    rng = np.random.default_rng(0)
    yy, xx = np.indices((64, 64))
    (tmp_path / "img").mkdir()
    (tmp_path / "lab").mkdir()
    for i in range(5):
        c = rng.uniform(20, 44, 2)
        disk = (yy - c[0]) ** 2 + (xx - c[1]) ** 2 < rng.uniform(60, 150)
        img = np.where(disk, 190, 60) + rng.normal(0, 8, (64, 64))
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(tmp_path / "img" / f"c{i}.png")
        Image.fromarray(disk.astype(np.uint8)).save(tmp_path / "lab" / f"c{i}.png")
    out = tmp_path / "tuned.safetensors"
    # one held-out family keeps the forgetting check in the run at a third of the default's cost
    (tmp_path / "dev.toml").write_text(
        '[dev]\n[[dev.families]]\nname = "spots-foreground"\nspec = "heldout:spots"\ntarget = "foreground"\n',
        encoding="utf-8",
    )
    args = ["finetune", "--images", "img", "--labels", "lab", "--out", str(out), "--steps", "3", "--score-sets", "2"]
    args += ["--dev", "dev.toml"]
    assert main(args) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert "test Set Dice" in err and "pooled Set Dice drop" in err
    tuned = Pancakes.from_pretrained(out)
    info = tuned.provenance["finetune"]
    assert set(info["dev_before"]) == set(info["dev_after"]) == {"spots-foreground"}  # the --dev file was read
    assert info["base_sha256"] == hashlib.sha256(resolve("default").read_bytes()).hexdigest()
    assert info["pairs"] == {"train": 3, "val": 1, "test": 1} and info["steps"] == 3
    assert not list(tmp_path.glob(".*finetune-work"))  # the work folder is gone
    assert main(args) == 2 and "exists" in capsys.readouterr().err  # never overwritten without --force
    assert main(["finetune", "--images", "img", "--labels", "img", "--out", str(tmp_path / "x.txt")]) == 2
