from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from pancakes_data import SamplerConfig, SetSampler, Source, TargetMix, collate_sets
from pancakes_data.set_augment import join_params
from pancakes_data.testing import write_store


@pytest.fixture
def toy(tmp_path):
    return write_store(tmp_path, n=12, size=32)


def test_label_present_in_every_element(toy):
    mix = TargetMix.only("structure")
    cfg = SamplerConfig(set_size=(3, 3), batch_size=2, augment=False, split="all", target_mix=mix)
    sampler = SetSampler([toy], config=cfg)
    for _, batch in zip(range(5), iter(sampler)):
        assert batch["images"].shape == (2, 3, 1, 32, 32)
        assert batch["targets"].shape == (1, 2, 3, 1, 32, 32)
        assert (batch["targets"].flatten(3).sum(-1) >= cfg.min_pixels).all()
        for b, meta in enumerate(batch["meta"]):
            proto = toy.protocol(meta["protocol"])
            for s, i in enumerate(meta["ids"]):
                expected = np.asarray(proto.maps[i]) == meta["labels"][0]
                assert np.array_equal(batch["targets"][0, b, s, 0].numpy(), expected)


def test_two_targets_from_one_protocol(toy):
    cfg = SamplerConfig(set_size=(2, 2), batch_size=4, targets=2, augment=False, split="all")
    for _, batch in zip(range(3), iter(SetSampler([toy], config=cfg))):
        assert batch["targets"].shape[:2] == (2, 4)
        assert not (batch["targets"][0] * batch["targets"][1]).any()
        assert (batch["targets"].flatten(3).sum(-1) >= cfg.min_pixels).all()
        for b, meta in enumerate(batch["meta"]):
            assert not set(meta["labels"]) & set(meta["second_labels"])
            proto = toy.protocol(meta["protocol"])
            for s, i in enumerate(meta["ids"]):
                expected = np.isin(np.asarray(proto.maps[i]), meta["second_labels"])
                assert np.array_equal(batch["targets"][1, b, s, 0].numpy(), expected)


def test_second_target_of_a_whole_foreground_is_the_background(toy):
    mix = TargetMix.only("foreground")
    cfg = SamplerConfig(set_size=(3, 3), targets=2, augment=False, split="all", target_mix=mix)
    batch = next(iter(SetSampler([toy], config=cfg)))
    meta = batch["meta"][0]
    assert 0 not in meta["labels"] and meta["second_labels"] == [0]
    torch.testing.assert_close(batch["targets"].sum(0), torch.ones_like(batch["targets"][0]))


def test_deterministic_and_s_varies(toy):
    cfg = SamplerConfig(set_size=(2, 4), augment=True, split="all", seed=3)
    a = [b["images"] for _, b in zip(range(6), iter(SetSampler([toy], config=cfg)))]
    b = [b["images"] for _, b in zip(range(6), iter(SetSampler([toy], config=cfg)))]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert len({x.shape[1] for x in a}) > 1


def test_synthetic_mix(toy, tmp_path):
    synth = pytest.importorskip("pancakes_synth")
    gen = synth.SetGenerator(synth.ProceduralSource(bank_size=16, cache_dir=tmp_path / "c"), set_size=5, seed=0)
    cfg = SamplerConfig(set_size=(2, 2), augment=False, split="all")
    batch = next(iter(SetSampler([Source("toy", toy, 0.0), Source("synth", gen, 1.0)], config=cfg)))
    assert batch["meta"][0]["source"] == "synth"
    assert batch["images"].shape == (1, 2, 1, 128, 128)
    assert (batch["targets"].flatten(3).sum(-1) > 0).all()
    # weights pick the sources: about half and half over many sets
    both = SetSampler([Source("toy", toy, 1.0), Source("synth", gen, 1.0)], config=cfg)
    kinds = [both.batch(i)["meta"][0]["source"] for i in range(40)]
    assert 10 <= kinds.count("synth") <= 30


def test_batches_do_not_depend_on_workers_and_resume_exactly(toy):
    cfg = SamplerConfig(set_size=(2, 4), split="all")
    loader = torch.utils.data.DataLoader(SetSampler([toy], config=cfg), batch_size=None, num_workers=2)
    got = [b for _, b in zip(range(4), loader)]
    assert not torch.equal(got[0]["images"], got[1]["images"])
    single = [b for _, b in zip(range(4), SetSampler([toy], config=cfg))]
    resumed = next(iter(SetSampler([toy], config=cfg, start=3)))
    for a, b in zip(got, single):
        assert torch.equal(a["images"], b["images"])
    assert torch.equal(resumed["targets"], got[3]["targets"])


class _DenormalProbe(SetSampler):
    """Reports whether the process making the batch keeps denormal numbers."""

    def batch(self, index, sets=None):
        tiny = np.array([5e-324])  # the smallest float64 denormal; flush-to-zero reads it as 0
        return {"denormals_kept": bool((tiny * 1.0)[0] != 0)}


def test_workers_make_sets_with_ieee_arithmetic_whatever_the_parent_flushes(toy):
    # A trainer flushes denormals for its optimizer and a forked worker inherits that; the
    # worker must switch it off, or its sets differ from those any other process makes.
    probe = _DenormalProbe([toy], config=SamplerConfig(set_size=(2, 2), split="all"))
    assert torch.set_flush_denormal(True), "this CPU cannot flush denormals"
    try:
        assert not next(iter(probe))["denormals_kept"]  # the parent does flush (the probe can fail)
        loader = torch.utils.data.DataLoader(probe, batch_size=None, num_workers=1)
        assert next(iter(loader))["denormals_kept"]
    finally:
        torch.set_flush_denormal(False)


def test_bad_configs(toy):
    with pytest.raises(ValueError, match="set_size"):
        SetSampler([toy], config=SamplerConfig(set_size=(0, 2)))
    with pytest.raises(ValueError, match=r"targets \(T\) must be 1 or 2"):
        SetSampler([toy], config=SamplerConfig(targets=3))
    with pytest.raises(ValueError, match="intensity_flip must be one of .*got 'pixel'"):
        SetSampler([toy], config=SamplerConfig(intensity_flip="pixel"))
    with pytest.raises(ValueError, match="nothing to sample"):
        SetSampler([])
    with pytest.raises(ValueError, match="weight must be a finite number"):
        Source("toy", toy, -1.0)
    with pytest.raises(ValueError, match="positive sum"):
        SetSampler([Source("toy", toy, 0.0)])
    with pytest.raises(TypeError, match="neither a Dataset nor a SetSource"):
        Source("bad", [1, 2, 3])
    with pytest.raises(ValueError, match="no images in split 'nope'|no split"):
        SetSampler([toy], config=SamplerConfig(split="nope"))
    with pytest.raises(ValueError, match="one size S"):
        collate_sets([{"images": torch.zeros(2, 1, 4, 4)}, {"images": torch.zeros(3, 1, 4, 4)}])
    sampler = SetSampler([toy], config=SamplerConfig(set_size=(50, 50), split="all", augment=False))
    with pytest.raises(ValueError, match="could not find a label present in S=50"):
        next(iter(sampler))


class _DarkSets:
    """A set source of dark images with one bright square (label 1): the median pixel tells
    an image's polarity after every other augmentation."""

    def __len__(self) -> int:
        return 4

    def get(self, index: int):
        labels = np.zeros((4, 32, 32), np.int64)
        labels[:, 8:20, 8:20] = 1
        images = np.where(labels == 1, 1.0, 0.1).astype(np.float32)
        return type("Set", (), {"images": images, "labels": labels, "classes": None})()


def test_sources_keep_their_own_intensity_flip():
    cfg = SamplerConfig(set_size=(4, 4), split="all", intensity_flip="image", seed=5)
    sources = [Source("per-image", _DarkSets(), 1.0), Source("per-set", _DarkSets(), 1.0, intensity_flip="set")]
    sampler = SetSampler(sources, config=cfg)
    polarities: dict[str, list[set[bool]]] = {"per-image": [], "per-set": []}
    for i in range(40):
        batch = sampler.batch(i)
        flips = {bool(x.median() > 0.5) for x in batch["images"][0]}
        polarities[batch["meta"][0]["source"]].append(flips)
    assert any(len(p) == 2 for p in polarities["per-image"])  # the sampler's mode: images on their own
    assert all(len(p) == 1 for p in polarities["per-set"])  # the source's mode: whole sets
    assert {next(iter(p)) for p in polarities["per-set"]} == {True, False}
    with pytest.raises(ValueError, match="intensity_flip must be one of .* got 'slice'"):
        Source("bad", _DarkSets(), intensity_flip="slice")


def test_deferred_batches_may_mix_intensity_flip_modes():
    """Sets of sources with different flip modes in one deferred batch (``augment_on = "device"``):
    one transform list applies them all and gives what each set's own mode gives at once."""
    sources = [Source("per-image", _DarkSets(), 1.0), Source("per-set", _DarkSets(), 1.0, intensity_flip="set")]
    at_once = SamplerConfig(set_size=(4, 4), batch_size=6, split="all", intensity_flip="image", seed=3)
    later = dataclasses.replace(at_once, defer_augmentation=True)
    ref, deferred = SetSampler(sources, config=at_once), SetSampler(sources, config=later)
    seen = set()
    for index in range(4):
        batch, want = deferred.batch(index), ref.batch(index)
        images, targets = deferred.augmentation.apply_batch(batch["images"], batch["targets"], batch["augment"])
        assert torch.allclose(images, want["images"], atol=1e-5)
        assert (targets != want["targets"]).float().mean() < 1e-4
        seen |= {m["source"] for m in batch["meta"]}
        for x, m in zip(images, batch["meta"]):  # the per-set source's sets keep one polarity
            if m["source"] == "per-set":
                assert len({bool(im.median() > 0.5) for im in x}) == 1
    assert seen == {"per-image", "per-set"}


def test_sets_of_a_batch_are_drawn_on_their_own(toy):
    """Set i of batch t depends on (seed, t, i) only: a rank can make its share of a batch."""
    cfg = SamplerConfig(set_size=(2, 3), batch_size=4, split="all", seed=1)
    sampler = SetSampler([toy], config=cfg)
    whole = sampler.batch(5)
    odd = sampler.batch(5, sets=[1, 3])
    assert torch.equal(odd["images"], whole["images"][[1, 3]])
    assert torch.equal(odd["targets"], whole["targets"][:, [1, 3]])


def test_coarse_targets_are_unions_present_in_every_image(toy):
    cfg = SamplerConfig(set_size=(3, 3), augment=False, split="all", target_mix=TargetMix.only("foreground"))
    for i in range(5):
        batch = SetSampler([toy], config=cfg).batch(i)
        meta = batch["meta"][0]
        assert meta["target"] == "foreground"
        proto = toy.protocol(meta["protocol"])
        for s, idx in enumerate(meta["ids"]):
            expected = np.asarray(proto.maps[idx]) != 0
            assert np.array_equal(batch["targets"][0, 0, s, 0].numpy(), expected)


def test_a_source_with_its_own_target_mix_overrides_the_samplers(toy, tmp_path):
    other = write_store(tmp_path / "other", name="other", n=12, size=32, seed=3)
    cfg = SamplerConfig(set_size=(3, 3), augment=False, split="all", target_mix=TargetMix.only("structure"))
    sources = [Source("toy", toy), Source("other", other, target_mix=TargetMix.only("foreground"))]
    sampler = SetSampler(sources, config=cfg)
    seen = {(m["source"], m["target"]) for i in range(16) for m in sampler.batch(i)["meta"]}
    assert seen == {("toy", "structure"), ("other", "foreground")}


def test_levels_targets_are_a_class_of_the_sets_own_intensities(toy):
    only = SamplerConfig(set_size=(3, 3), augment=False, split="all", target_mix=TargetMix(levels=1.0, structure=1e-9))
    seen = 0
    for i in range(6):
        batch = SetSampler([toy], config=only).batch(i)
        meta = batch["meta"][0]
        if meta["target"] != "levels":
            continue
        seen += 1
        images = batch["images"][0, :, 0].numpy()
        target = batch["targets"][0, 0, :, 0].numpy().astype(bool)
        # the target is one class of a k-means of the set's (blurred) intensities: a narrower band of
        # grey than the whole set, in every image
        assert target.any(axis=(1, 2)).all() and (~target).any(axis=(1, 2)).all()
        assert images[target].std() < images.std()
        assert meta["label_names"][0].startswith("intensity class")
    assert seen >= 5  # levels share ~1: nearly every set
    # a mix without levels draws exactly the sets it drew before the kind existed
    base = SamplerConfig(set_size=(3, 3), augment=False, split="all")
    explicit = SamplerConfig(set_size=(3, 3), augment=False, split="all", target_mix=TargetMix(levels=0.0))
    for i in range(3):
        a, b = SetSampler([toy], config=base).batch(i), SetSampler([toy], config=explicit).batch(i)
        assert torch.equal(a["targets"], b["targets"]) and a["meta"] == b["meta"]


def test_deferred_augmentation_gives_the_same_sets(toy):
    """Parameters drawn in the workers and applied to the whole batch later (on the training
    device) give the sets that augmenting at once gives: same draws, float rounding only."""
    at_once = SamplerConfig(set_size=(3, 3), batch_size=4, split="all", seed=5)
    later = SamplerConfig(set_size=(3, 3), batch_size=4, split="all", seed=5, defer_augmentation=True)
    ref = SetSampler([toy], config=at_once)
    loader = torch.utils.data.DataLoader(SetSampler([toy], config=later), batch_size=None, num_workers=0)
    for index, batch in zip(range(3), loader):
        assert batch["augment"].sets == 4  # joined in the worker: one tensor per parameter
        assert all(isinstance(v, torch.Tensor) for d in batch["augment"].within for v in d.values())
        images, targets = ref.augmentation.apply_batch(batch["images"], batch["targets"], batch["augment"])
        want = ref.batch(index)
        assert images.shape == want["images"].shape and targets.shape == want["targets"].shape
        assert torch.allclose(images, want["images"], atol=1e-5)
        assert (targets != want["targets"]).float().mean() < 1e-4  # a rare pixel on the 0.5 threshold
    with pytest.raises(ValueError, match="4 parameter sets for a batch of 2 sets"):
        ref.augmentation.apply_batch(batch["images"][:2], batch["targets"][:, :2], batch["augment"])
    # the per-set parameters as drawn, joined by apply_batch itself, give the same batch
    raw = [ref.augmentation.sample(np.random.default_rng(1), 3) for _ in range(2)]
    images = torch.rand(2, 3, 1, 32, 32)
    targets = (torch.rand(1, 2, 3, 1, 32, 32) > 0.5).float()
    a = ref.augmentation.apply_batch(images, targets, raw)
    b = ref.augmentation.apply_batch(images, targets, join_params(raw))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
