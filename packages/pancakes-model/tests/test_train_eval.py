from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from pancakes_model import Pancakes
from pancakes_model.training.config import load_config
from pancakes_model.training.trainer import Trainer

pytest.importorskip("pancakes_data")
pytest.importorskip("pancakes_synth")
pytest.importorskip("pancakes_eval")


def write_dev(tmp_path):
    """A dev config with one family, the toy-dev dataset of the test store."""
    dev = tmp_path / "dev.toml"
    store = tmp_path / "store"
    dev.write_text(
        f'[dev]\nsets = 2\nsizes = [1, 3]\ngrid_M = [1, 2]\ngrid_K = [3]\ngrid_sets = 2\nstore = "{store}"\n'
        '[[dev.families]]\nname = "toy-dev"\nspec = "store:toy-dev"\n'
    )
    return dev


def tiny_config(tmp_path, **train):
    from pancakes_data.testing import write_store

    write_store(tmp_path / "store", name="toy", n=8, size=128)
    write_store(tmp_path / "store", name="toy-dev", n=6, size=128, seed=1)
    dev = write_dev(tmp_path)
    overrides = [
        "train.steps=4",
        "train.batch_size=2",
        "train.warmup=1",
        "train.M=[2, 3]",
        "train.K=[3, 5]",
        "train.S=[2, 2]",
        "train.curriculum=[[1.0, 32]]",
        "train.workers=0",
        "train.log_every=1",
        "train.checkpoint_every=2",
        f'data.store="{tmp_path / "store"}"',
        'data.sources=[{spec = "store:toy", weight = 1.0}, {spec = "procedural;bank=8", weight = 1.0}]',
        f'data.cache_dir="{tmp_path / "cache"}"',
        f'val.dev="{dev}"',
        "val.every=2",
        "val.sets=2",
        "val.M=2",
        "val.K=3",
        "val.S=2",
        f'out.dir="{tmp_path / "run"}"',
    ] + [f"train.{k}={v}" for k, v in train.items()]
    return load_config(None, overrides)


@pytest.mark.slow
def test_tiny_run_writes_loadable_checkpoints_and_logs(tmp_path):
    cfg = tiny_config(tmp_path)
    result = Trainer(cfg, progress=False).run()
    run = tmp_path / "run"
    assert result["step"] == 4
    for name in ("best.safetensors", "last.safetensors", "log.jsonl", "metrics.csv", "curve.png"):
        assert (run / name).is_file(), name
    kept = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert kept == ["step-00000002", "step-00000004"]
    assert {f.name for f in (run / "checkpoints" / kept[-1]).iterdir()} == {
        "model.safetensors",
        "optimizer.safetensors",
        "state.json",
    }
    model = Pancakes.from_pretrained(run / "best.safetensors")
    assert model.provenance["steps"] >= 2
    assert "store:toy" in model.provenance["data_sources"]
    assert len(model.provenance["stages"]) == 1
    assert model.preprocess.size == 32  # the curriculum's last size, read back by inference
    rows = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    val = [r for r in rows if r["kind"] == "val"]
    assert {"val_set_dice", "labels_used_per_protocol", "protocol_agreement_nmi", "winner_protocol_hist"} <= set(val[0])
    with pytest.raises(ValueError, match="already holds a run"):
        Trainer(cfg, progress=False)


@pytest.mark.slow
def test_resume_reproduces_the_next_loss(tmp_path):
    full_cfg = tiny_config(tmp_path)
    Trainer(full_cfg, progress=False).run()
    losses = {
        r["step"]: r["loss"]
        for r in map(json.loads, (tmp_path / "run" / "log.jsonl").read_text().splitlines())
        if r["kind"] == "train"
    }
    other = tmp_path / "other"
    other.mkdir()
    cfg = tiny_config(other, steps=2)
    Trainer(cfg, progress=False).run()  # stops at step 2 with a checkpoint
    cfg4 = tiny_config(other)
    trainer = Trainer(cfg4, resume=True, progress=False)
    assert trainer.step == 2
    loader = trainer.loader()
    row = trainer.train_step(next(loader))
    assert row["step"] == 3
    assert row["loss"] == pytest.approx(losses[3], rel=1e-5, abs=1e-6)


@pytest.mark.slow
def test_a_run_with_an_average_writes_it_validates_it_and_resumes_it_exactly(tmp_path):
    whole, split = tmp_path / "whole", tmp_path / "split"
    for folder in (whole, split):
        folder.mkdir()
    fp32 = '"fp32"'  # bfloat16 on a CPU with native bf16: the comparison wants one arithmetic
    Trainer(tiny_config(whole, ema=0.5, precision=fp32), progress=False).run()
    stopped = Trainer(tiny_config(split, ema=0.5, precision=fp32), progress=False).run(max_minutes=1e-9)
    assert stopped["step"] == 1  # cut off after its first step, with a checkpoint
    Trainer(tiny_config(split, ema=0.5, precision=fp32), resume=True, progress=False).run()
    a = load_file(str(whole / "run" / "ema.safetensors"))
    b = load_file(str(split / "run" / "ema.safetensors"))
    last = load_file(str(whole / "run" / "last.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name  # a resumed average is the uninterrupted one
    assert any(not torch.equal(a[n], last[n]) for n in a)  # the average is not the last step
    averaged = Pancakes.from_pretrained(whole / "run" / "ema.safetensors")
    assert averaged.provenance["ema_decay"] == 0.5
    rows = [json.loads(x) for x in (whole / "run" / "log.jsonl").read_text().splitlines()]
    val = [r for r in rows if r["kind"] == "val"]
    assert val and all("val_ema_set_dice" in r and "val_ema_toy-dev" in r for r in val)


def test_set_steps_moves_the_end_of_the_schedule_and_keeps_its_position(tmp_path):
    from pancakes_model.training.schedule import lr_factor

    cfg = tiny_config(tmp_path, steps=100, warmup=2, lr=1e-3)
    trainer = Trainer(cfg, progress=False)
    for _ in range(5):  # the scheduler as the training loop steps it
        trainer.opt.step()
        trainer.scheduler.step()
    trainer.set_steps(20)
    assert trainer.cfg.train.steps == 20 and trainer.scheduler.last_epoch == 5
    trainer.opt.step()
    trainer.scheduler.step()
    lr = trainer.opt.param_groups[0]["lr"]
    # step 6 on the cosine that now ends at 20, from the configured lr (not from the current one)
    assert lr == pytest.approx(1e-3 * lr_factor(6, trainer.cfg.train))
    assert lr < 1e-3 * lr_factor(6, cfg.train)


@pytest.mark.slow
def test_init_from_existing_weights(tmp_path):
    torch.manual_seed(3)
    start = Pancakes().save_pretrained(tmp_path / "start.safetensors")
    cfg = tiny_config(tmp_path, steps=1, init=f'"{start}"')
    # [model] is the architecture of a run from scratch; with init only label_caps applies here
    # (features = 16 is below the weights' 32: a narrower model section never shrinks them)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, label_caps=(2,), features=16))
    trainer = Trainer(cfg, progress=False)
    ref = Pancakes.from_pretrained(start)
    for a, b in zip(trainer.model.state_dict().values(), ref.state_dict().values()):
        assert torch.equal(a.cpu(), b)
    assert trainer.model.config.label_caps == (2,)
    assert trainer.model.config.features == ref.config.features == 32


@pytest.mark.slow
def test_a_wider_model_section_widens_the_init_weights(tmp_path):
    torch.manual_seed(3)
    start = Pancakes(features=8, sampler_dims=8).save_pretrained(tmp_path / "start.safetensors")
    cfg = tiny_config(tmp_path, steps=1, init=f'"{start}"', seed=7)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, features=12))
    trainer = Trainer(cfg, progress=False)
    grown = Pancakes.from_pretrained(start).grow_features(12, seed=7)
    assert trainer.model.config.features == 12
    for key, value in grown.state_dict().items():
        assert torch.equal(trainer.model.state_dict()[key].cpu(), value), key


def test_config_errors(tmp_path):
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['train.nope'\]"):
        load_config(None, ["train.nope=1"])
    with pytest.raises(ValueError, match="section.key=value"):
        load_config(None, ["lr"])
    with pytest.raises(ValueError, match=r"train.K must be a range"):
        load_config(None, ["train.K=[0, 3]"])
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ValueError, match=r"data.sources\[0\].target_mix: unknown target kinds \['tiny'\]"):
        load_config(None, ['data.sources=[{spec = "procedural", target_mix = {tiny = 1.0}}]'])
    from pancakes_model.training.config import ConfigError  # one line and exit 2 at the command line

    with pytest.raises(ConfigError, match=r"data.target_mix: target mix weights must be >= 0"):
        load_config(None, ["data.target_mix={small = -1.0}"])
    with pytest.raises(ConfigError, match=r"joint_weight in \[0, 1\]; got 2, 1.5"):
        load_config(None, ["train.targets=2", "train.joint_weight=1.5"])
    one = load_config(None, ['data.sources=[{spec = "procedural", target_mix = {small = 1.0}}]'])
    assert one.data.sources[0].target_mix == {"small": 1.0}


@pytest.mark.slow
def test_evaluate_writes_the_card_table(tmp_path):
    pytest.importorskip("skimage")
    from pancakes_data.testing import write_store
    from pancakes_model.training.evaluate import main

    write_store(tmp_path / "store", name="toy-dev", n=6, size=128)
    dev = write_dev(tmp_path)
    card = tmp_path / "CARD.md"
    card.write_text("# card\n<!-- eval:start -->\nold\n<!-- eval:end -->\ntail\n")
    torch.manual_seed(0)
    weights = Pancakes().save_pretrained(tmp_path / "w.safetensors", provenance={"steps": 0})
    code = main(
        [
            "--model",
            str(weights),
            "--dev",
            str(dev),
            "--out",
            str(tmp_path / "ev"),
            "--cache",  # the default (runs/evaluate-cache) is relative to the working folder
            str(tmp_path / "cache"),
            "--write",
            str(card),
        ]
    )
    assert code == 0
    text = card.read_text()
    assert "old" not in text
    assert "| toy-dev | 3 | **pancakes** |" in text
    assert "kmeans" in text and "felzenszwalb" in text
    assert text.endswith("<!-- eval:end -->\ntail\n")
    results = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert set(results["sources"]["toy-dev"]) == {"1", "3"}
    paired = results["consistency"]["toy-dev"]  # the S=3 sets, each image alone vs the whole set
    assert paired["S"] == 3 and paired["gap"]["n"] == 2
    # recomputed here from the same sets and weights: the whole set shares one (m, k), each image
    # alone takes its own best, so alone >= whole for every set
    from pancakes_eval import compute_set_dice
    from pancakes_model.training.devset import family_sets, load_dev
    from pancakes_model.training.validation import predict_labels, set_arrays

    dev_cfg, model = load_dev(dev), Pancakes.from_pretrained(weights)
    whole, alone = [], []
    for b in family_sets(dev_cfg.families[0], s=3, n=results["n_sets"], seed=dev_cfg.seed, store=dev_cfg.store):
        images, y = set_arrays(b)
        pred = predict_labels(model, images, results["M"], results["K"])
        whole.append(compute_set_dice(pred, y, num_labels=results["K"]).score)
        alone.append(
            np.mean([compute_set_dice(pred[j : j + 1], y[j : j + 1], num_labels=results["K"]).score for j in range(3)])
        )
    assert paired["whole_set"] == pytest.approx(np.mean(whole), abs=1e-6)
    assert paired["each_image_alone"] == pytest.approx(np.mean(alone), abs=1e-6)
    assert all(a >= w - 1e-9 for a, w in zip(alone, whole))
    assert "Paired on the same S=3 sets" in text
    diag = results["diagnosis"]["toy-dev"]
    assert 1 <= diag["coarsest_labels"] <= diag["finest_labels"] <= results["K"]
    assert f"| {diag['finest_labels']:.1f} / {diag['coarsest_labels']:.1f} |" in text
    assert (tmp_path / "ev" / "protocols.png").is_file()


def test_compare_applies_the_stage_rule_and_keeps_the_reference_for_the_report(tmp_path):
    pytest.importorskip("skimage")
    from pancakes_data.testing import write_store
    from pancakes_model.training.evaluate import main
    from pancakes_model.training.report import main as report

    write_store(tmp_path / "store", name="toy-dev", n=6, size=128)
    dev = write_dev(tmp_path)
    torch.manual_seed(0)
    old = Pancakes().save_pretrained(tmp_path / "old.safetensors", provenance={"steps": 0})
    torch.manual_seed(1)
    new = Pancakes().save_pretrained(tmp_path / "new.safetensors", provenance={"steps": 0})
    out = tmp_path / "ev"
    args = ["--model", str(new), "--compare", str(old), "--dev", str(dev), "--no-grid", "--cache", str(tmp_path / "c")]
    assert main([*args, "--out", str(out), "--sizes", "3"]) == 0
    results = json.loads((out / "results.json").read_text())
    reference = json.loads((out / "compared.json").read_text())
    new_sets = results["sources"]["toy-dev"]["3"]["pancakes"]["set_dice"]["values"]
    old_sets = reference["sources"]["toy-dev"]["3"]["pancakes"]["set_dice"]["values"]
    assert len(new_sets) == len(old_sets) == 2 and new_sets != old_sets  # two models, the same sets
    family = results["stage"]["families"]["toy-dev"]
    assert family["mean"] == pytest.approx(np.mean(np.subtract(new_sets, old_sets)), abs=1e-9)
    card = tmp_path / "CARD.md"
    card.write_text("<!-- candidates-x:start -->\n<!-- candidates-x:end -->\n")
    runs = ["--reference", str(out / "compared.json"), f"new={out / 'results.json'}"]
    assert report([*runs, "--write", str(card), "--marker", "candidates-x"]) == 0
    row = next(line for line in card.read_text().splitlines() if line.startswith("| new |"))
    assert f"({family['mean']:+.3f} [{family['low']:+.3f}, {family['high']:+.3f}])" in row  # evaluate's bootstrap
    assert row.endswith("| ship |") == bool(results["stage"]["accept"])
    # a second candidate against the same reference reads its scores from the cache (marked here)
    (cached,) = (tmp_path / "c").glob("reference-*.json")
    cached.write_text(json.dumps({**json.loads(cached.read_text()), "marker": 1}))
    assert main([*args, "--out", str(tmp_path / "ev2"), "--sizes", "3"]) == 0
    assert json.loads((tmp_path / "ev2" / "compared.json").read_text())["marker"] == 1
    torch.manual_seed(2)
    Pancakes().save_pretrained(old, provenance={"steps": 0})  # other weights at the same path: recomputed
    assert main([*args, "--out", str(tmp_path / "ev3"), "--sizes", "3"]) == 0
    assert "marker" not in json.loads((tmp_path / "ev3" / "compared.json").read_text())
    assert len(list((tmp_path / "c").glob("reference-*.json"))) == 2


def test_a_family_with_its_own_number_of_sets_recomputes_only_its_baseline_rows(tmp_path):
    """dev.families[i].sets: that family is scored on more sets (the first ones unchanged), the
    table says so, and the baseline cache keeps the other family's rows."""
    pytest.importorskip("skimage")
    from pancakes_data.testing import write_store
    from pancakes_model.training import evaluate as ev
    from pancakes_model.training.devset import load_dev

    write_store(tmp_path / "store", name="toy-dev", n=6, size=128)
    dev = write_dev(tmp_path)
    family = '[[dev.families]]\nname = "toy-b"\nspec = "store:toy-dev"\ntarget = "foreground"\n'
    dev.write_text(dev.read_text() + family)
    torch.manual_seed(0)
    weights = Pancakes().save_pretrained(tmp_path / "w.safetensors", provenance={"steps": 0})
    args = ["--model", str(weights), "--dev", str(dev), "--no-grid", "--sizes", "3", "--cache", str(tmp_path / "c")]
    assert ev.main([*args, "--out", str(tmp_path / "a")]) == 0
    first = json.loads((tmp_path / "a" / "results.json").read_text())
    cache = next((tmp_path / "c").glob("baselines-*.json"))
    marked = {k: {**v, "marker": 1} for k, v in json.loads(cache.read_text()).items()}
    cache.write_text(json.dumps(marked))
    dev.write_text(dev.read_text() + "sets = 3\n")  # toy-b: 3 sets instead of [dev] sets = 2
    assert load_dev(dev).sets_of(load_dev(dev).family("toy-b")) == 3
    assert ev.main([*args, "--out", str(tmp_path / "b")]) == 0
    second = json.loads((tmp_path / "b" / "results.json").read_text())
    assert second["family_sets"] == {"toy-dev": 2, "toy-b": 3}
    rows = second["sources"]
    assert rows["toy-dev"]["3"]["kmeans"].get("marker") == 1  # unchanged family: read from the cache
    assert "marker" not in rows["toy-b"]["3"]["kmeans"]  # more sets: recomputed
    b_first = first["sources"]["toy-b"]["3"]["pancakes"]["set_dice"]["values"]
    b_second = rows["toy-b"]["3"]["pancakes"]["set_dice"]["values"]
    assert len(b_second) == 3 and b_second[:2] == b_first  # the first sets are the same sets
    assert "mean over 2 sets per cell (toy-b: 3) with" in (tmp_path / "b" / "table.md").read_text()


@pytest.mark.slow
def test_augmenting_on_the_device_trains_on_the_same_sets(tmp_path):
    """data.augment_on = "device": the workers only draw parameters and the training device applies
    them; the losses match the workers route (the same sets, float rounding only)."""
    losses = {}
    for route in ("workers", "device"):
        run = tmp_path / route
        run.mkdir()
        cfg = tiny_config(run)
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, augment_on=route))
        Trainer(cfg, progress=False).run()
        rows = map(json.loads, (run / "run" / "log.jsonl").read_text().splitlines())
        losses[route] = [r["loss"] for r in rows if r["kind"] == "train"]
    assert len(losses["device"]) == 4
    assert losses["device"] == pytest.approx(losses["workers"], rel=1e-3, abs=1e-4)
    with pytest.raises(ValueError, match="data.augment_on must be 'workers' or 'device', got 'gpu'"):
        load_config(None, ['data.augment_on="gpu"'])


def test_targetmix_counts_what_is_drawn_per_source(tmp_path, capsys):
    from pancakes_model.training.targetmix import draw_counts, main, render

    tiny_config(tmp_path)  # writes the toy store and the dev config
    base = [
        f"{k}={v}" for k, v in (("data.store", f'"{tmp_path / "store"}"'), ("val.dev", f'"{tmp_path / "dev.toml"}"'))
    ]
    sources = 'data.sources=[{spec = "store:toy", weight = 1.0}, {spec = "procedural;bank=8", weight = 1.0}]'
    cache = f'data.cache_dir="{tmp_path / "cache"}"'
    only = [*base, sources, cache, "data.target_mix={foreground = 1.0}"]
    result = draw_counts(None, sets=8, s=2, overrides=only)
    assert sum(result["counts"].values()) == 8
    assert {kind for kind, _ in result["counts"]} == {"foreground"}  # the only kind asked, always offered
    assert {src for _, src in result["counts"]} <= {"store:toy", "procedural;bank=8"}
    assert all(0 < a < 1 for a in result["area"].values())
    assert "| foreground | 100% | 100% (8) |" in render(result)
    assert "own target_mix" not in render(result)
    own = draw_counts(
        None, sets=4, s=2, overrides=[*base, sources.replace("weight = 1.0}]", "target_mix = {small = 1.0}}]"), cache]
    )
    assert own["own_mix"] == ["procedural;bank=8"] and "own target_mix (not in 'asked'): procedural;bank=8." in render(
        own
    )
    assert result["asked"] == {"foreground": 1.0}
    assert main(["x.toml", "--sets", "0"]) == 2
    assert "--sets and --set-size must be ≥ 1, got 0" in capsys.readouterr().err
