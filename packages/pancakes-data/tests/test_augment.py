from __future__ import annotations

import numpy as np
import pytest
import torch

from pancakes_data.augment import (
    Affine,
    BrightnessContrast,
    Elastic,
    Flip,
    GaussianBlur,
    GaussianNoise,
    IntensityFlip,
    Sharpness,
)
from pancakes_data.set_augment import SetAugmentation, paper_across_set, paper_within_set


def batch(s=3, h=32, w=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    img = torch.rand(s, 1, h, w, generator=g) * 0.5 + 0.25
    tgt = (torch.rand(s, 2, h, w, generator=g) > 0.5).float()
    return img, tgt


def always(t):
    t.p = 1.0
    return t


def test_flips_equal_torch_flip():
    img, tgt = batch()
    rng = np.random.default_rng(0)
    for axis, dim in (("horizontal", -1), ("vertical", -2)):
        t = Flip(axis=axis, p=1.0)
        i2, t2 = t.apply(img, tgt, t.sample(rng, 3))
        assert torch.equal(i2, torch.flip(img, [dim]))
        assert torch.equal(t2, torch.flip(tgt, [dim]))


def test_affine_moves_a_marked_point_where_the_matrix_says():
    h = w = 65
    img = torch.zeros(1, 1, h, w)
    tgt = torch.zeros(1, 1, h, w)
    img[0, 0, 32, 44] = 1.0  # (row, col) = 12 px right of the centre
    tgt[0, 0, 30:35, 42:47] = 1.0
    t = Affine(rotation=(90, 90), translate=0.0, scale=(1.0, 1.0), p=1.0)
    params = t.sample(np.random.default_rng(0), 1)
    i2, t2 = t.apply(img, tgt, params)
    r, c = np.unravel_index(int(i2[0, 0].argmax()), (h, w))
    # +90° in image coordinates (x right, y down) takes (x=+12, y=0) to (x=0, y=+12)
    assert (abs(int(r) - 44) <= 1) and (abs(int(c) - 32) <= 1)
    assert t2[0, 0, 44, 32] == 1.0
    assert set(torch.unique(t2).tolist()) <= {0.0, 1.0}
    shift = Affine(rotation=(0, 0), translate=0.0, scale=(1.0, 1.0), p=1.0)
    p2 = shift.sample(np.random.default_rng(0), 1)
    p2["tx"][:] = 6 / w  # a fraction of the image size: 6 px to the right
    i3, _ = shift.apply(img, tgt, p2)
    assert np.unravel_index(int(i3[0, 0].argmax()), (h, w)) == (32, 50)


def test_brightness_contrast_change_mean_and_std_as_specified():
    img, tgt = batch()
    t = BrightnessContrast(brightness=(0.1, 0.1), contrast=(0.5, 0.5), p=1.0)
    i2, t2 = t.apply(img, tgt, t.sample(np.random.default_rng(0), 3))
    for s in range(3):
        assert float(i2[s].mean()) == pytest.approx(float(img[s].mean()) + 0.1, abs=1e-5)
        assert float(i2[s].std()) == pytest.approx(float(img[s].std()) * 0.5, rel=1e-4)
    assert torch.equal(t2, tgt)


def test_intensity_flip_noise_blur_sharpness_reference():
    img, tgt = batch()
    rng = np.random.default_rng(0)
    t = IntensityFlip(p=1.0)
    assert torch.allclose(t.apply(img, tgt, t.sample(rng, 3))[0], 1 - img)
    n = GaussianNoise(mean=(0.05, 0.05), std=(0.0, 0.0), p=1.0, size=32)
    assert torch.allclose(n.apply(img, tgt, n.sample(rng, 3))[0], img + 0.05, atol=1e-6)
    b = GaussianBlur(sigma=(1.0, 1.0), kernel=5, p=1.0)
    out = b.apply(img, tgt, b.sample(rng, 3))[0]
    assert out.std() < img.std()
    assert float(out.mean()) == pytest.approx(float(img.mean()), abs=0.02)
    flat = torch.full((1, 1, 8, 8), 0.3)
    s = Sharpness(factor=3.0, p=1.0)
    assert torch.allclose(s.apply(flat, flat[:, :0], s.sample(rng, 1))[0], flat)


def test_elastic_is_small_and_keeps_targets_binary():
    img, tgt = batch(h=64, w=64)
    e = Elastic(alpha=(2.5, 2.5), sigma=(8.0, 8.0), p=1.0, size=64)
    i2, t2 = e.apply(img, tgt, e.sample(np.random.default_rng(1), 3))
    assert set(torch.unique(t2).tolist()) <= {0.0, 1.0}
    assert (t2 != tgt).float().mean() < 0.5
    assert not torch.equal(i2, img)


def test_across_set_shared_within_set_independent():
    aug = SetAugmentation(paper_across_set(32), paper_within_set(32))
    across, within = aug.sample(np.random.default_rng(3), 4)
    for p in across:
        for k, v in p.items():
            if k != "z":
                assert (v == v[:1]).all(), k
    assert any((p["apply"] != p["apply"][0]).any() or ("angle" in p and np.ptp(p["angle"]) > 0) for p in within)


def test_pipeline_is_deterministic_and_bounded():
    aug = SetAugmentation(paper_across_set(32), paper_within_set(32))
    img, tgt = batch()
    a = aug(img, tgt, np.random.default_rng(7))
    b = aug(img, tgt, np.random.default_rng(7))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert a[0].min() >= 0 and a[0].max() <= 1


def test_bad_parameters():
    with pytest.raises(ValueError, match="p must be within"):
        IntensityFlip(p=1.5)
    with pytest.raises(ValueError, match="odd positive"):
        GaussianBlur(sigma=(1, 1), kernel=4, p=0.5)
    with pytest.raises(ValueError, match="horizontal"):
        Flip(axis="diagonal", p=0.5)


@pytest.mark.gpu
def test_apply_on_cuda_matches_cpu():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")

    aug = SetAugmentation(paper_across_set(size=64), paper_within_set(size=64))
    rng = np.random.default_rng(0)
    images = torch.rand(2, 3, 1, 64, 64)
    targets = (torch.rand(1, 2, 3, 1, 64, 64) > 0.5).float()
    params = [aug.sample(rng, 3) for _ in range(2)]
    cpu = aug.apply_batch(images, targets, params)
    gpu = aug.apply_batch(images.cuda(), targets.cuda(), params)
    assert torch.allclose(cpu[0], gpu[0].cpu(), atol=1e-4)
    assert (cpu[1] != gpu[1].cpu()).float().mean() < 1e-3


@pytest.mark.parametrize(
    ("shape", "sigma", "radius"), [((2, 32, 32), 8.3, None), ((1, 20, 28), 0.7, 2), ((2, 9, 9), 5.0, None)]
)
def test_gaussian_blur_equals_reflect_padded_convolution(shape, sigma, radius):
    import math

    import torch.nn.functional as F

    from pancakes_data.augment import _gauss

    x = torch.rand(shape, generator=torch.Generator().manual_seed(3))
    r = min(radius if radius is not None else max(1, math.ceil(3 * sigma)), shape[-1] - 1, shape[-2] - 1)
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float32) / sigma) ** 2)
    k = k / k.sum()
    c = shape[0]
    ref = F.conv2d(F.pad(x[None], (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    ref = F.conv2d(F.pad(ref, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)[0]
    torch.testing.assert_close(_gauss(x, sigma, radius=radius), ref, rtol=1e-5, atol=1e-6)


def _polarities(intensity_flip: str, sets: int = 30, s: int = 4, size: int = 32) -> list[set[bool]]:
    """Per set, the polarities its images come out with: a flat dark image (0.15) stays below 0.5
    in the median under every other transform (brightness ±0.1 twice, noise, the affine's zero
    padding at the edges) and lands above it when inverted."""
    img, tgt = torch.full((s, 1, size, size), 0.15), torch.zeros(s, 0, size, size)
    aug = SetAugmentation(
        paper_across_set(size, intensity_flip=intensity_flip), paper_within_set(size, intensity_flip=intensity_flip)
    )
    return [{bool(x.median() > 0.5) for x in aug(img, tgt, np.random.default_rng(i))[0]} for i in range(sets)]


def test_intensity_flip_per_image_or_per_set():
    per_image, per_set = _polarities("image"), _polarities("set")
    assert any(len(p) == 2 for p in per_image)  # Table 3: images of one set inverted on their own
    assert all(len(p) == 1 for p in per_set)  # a set keeps one polarity ...
    assert {next(iter(p)) for p in per_set} == {True, False}  # ... and whole sets are inverted
    # both modes keep one flip slot in both lists (p = 0 where unused): one parameter layout
    for lists in (paper_across_set, paper_within_set):
        image, whole = lists(intensity_flip="image"), lists(intensity_flip="set")
        assert [type(t) for t in image] == [type(t) for t in whole]
        assert sorted(t.p for t in image + whole if isinstance(t, IntensityFlip)) == [0.0, 0.5]
    with pytest.raises(ValueError, match="intensity_flip must be one of .*'volume'"):
        paper_within_set(intensity_flip="volume")


def test_a_transform_with_p_zero_draws_nothing():
    """A p = 0 slot leaves the generator where it was, so adding one changes no later draw."""
    rng = np.random.default_rng(4)
    noise = GaussianNoise(mean=(0.0, 0.05), std=(0.0, 0.05), p=0.0, size=8)
    for params in (noise.sample(rng, 3), noise.sample_shared(rng, 3), IntensityFlip(p=0.0).sample(rng, 3)):
        assert not params["apply"].any() and len(params["apply"]) == 3
    assert set(noise.sample(rng, 3)) == {"mu", "sd", "z", "apply"}  # the layout of a drawn one
    assert rng.random() == np.random.default_rng(4).random()
