"""Set augmentations of the paper's Table 3, vectorised in torch over the set.

Two families:

* **within-set** (in-task): parameters drawn independently for every element of a set;
* **across-set** (task): one draw shared by every element, so the whole set changes together.

Every transform follows torchio's split: ``sample(rng, n)`` draws parameters (a dict of numpy
arrays, one row per element, with an ``apply`` mask for the probability p), then
``apply(images, targets, params)`` is deterministic. Geometric transforms move images (bilinear)
and binary targets (bilinear, then threshold at 0.5) together.

Shapes: images (S, 1, H, W) float32 in [0, 1]; targets (S, T, H, W) float32 in {0, 1}.

Semantics of the ranges (Table 3 gives only numbers):
* affine: rotation in degrees, translation as a fraction of the image size, isotropic scale.
* brightness b / contrast c: ``x' = (x − mean) · c + mean + b`` (mean per image).
* elastic α, σ: a displacement of uniform noise in [−1, 1] smoothed by a Gaussian of σ pixels and
  scaled by α, in normalised coordinates (the kornia convention).
* sharpness f: ``x' = blur3×3(x) + f · (x − blur3×3(x))`` (torchvision's adjust_sharpness).
* noise μ, σ: add N(μ, σ²) with μ ~ U(0, 0.05), σ ~ U(0, 0.05) per draw.
* intensity flip: ``x' = 1 − x``.
Images are clamped to [0, 1] after the whole pipeline.

Where it runs: parameters are numpy (drawn where the sets are made, e.g. DataLoader workers);
``apply`` runs on the device of the images, so a GPU run can draw in the workers and apply on the
GPU (:meth:`SetAugmentation.apply_batch`, ``data.augment_on = "device"``), which keeps the workers'
share of the work small. Same parameters, same result (up to float rounding across devices).

Why not torchio's transforms (which pancakes-data uses for reading): measured on one CPU thread,
an affine and an elastic warp of a set of five 128² images with one draw per image take ~175 ms
here and ~1,380 ms with ``tio.RandomAffine`` + ``tio.RandomElasticDeformation`` on one subject per
image (7.9× slower: torchio works per 3D subject and resamples through SimpleITK), so the
vectorised torch code stays.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "Affine",
    "BrightnessContrast",
    "Elastic",
    "Flip",
    "GaussianBlur",
    "GaussianNoise",
    "IntensityFlip",
    "Params",
    "Sharpness",
    "Transform",
]

Params = dict[str, np.ndarray]


def _u(rng: np.random.Generator, lo: float, hi: float, n: int) -> np.ndarray:
    return rng.uniform(lo, hi, size=n)


def _on(value, like: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A parameter array as a tensor on the device of ``like`` (numpy, or tensors after a DataLoader)."""
    return torch.as_tensor(np.asarray(value), dtype=dtype).to(like.device)


class Transform:
    """Base class: probability ``p`` per draw, ``sample`` then ``apply``."""

    geometric = False

    def __init__(self, *, p: float) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{type(self).__name__}: p must be within [0, 1], got {p}")
        self.p = p

    def sample(self, rng: np.random.Generator, n: int) -> Params:
        """Parameters of ``n`` draws; a transform with p = 0 draws nothing from ``rng`` (a slot
        kept for the layout, :func:`~pancakes_data.set_augment.flip_slot`, changes no later draw)."""
        if self.p == 0.0:
            return {**self._sample(np.random.default_rng(0), n), "apply": np.zeros(n, dtype=bool)}
        params = self._sample(rng, n)
        params["apply"] = rng.random(n) < self.p
        return params

    def sample_shared(self, rng: np.random.Generator, n: int) -> Params:
        """One draw for the whole set (across-set use), repeated for its ``n`` elements."""
        one = self.sample(rng, 1)
        return {k: np.repeat(v, n, axis=0) for k, v in one.items()}

    def _sample(self, rng: np.random.Generator, n: int) -> Params:
        raise NotImplementedError

    def apply(self, images: torch.Tensor, targets: torch.Tensor, params: Params) -> tuple[torch.Tensor, torch.Tensor]:
        on = np.asarray(params["apply"], dtype=bool)
        if not on.any():
            return images, targets
        if on.all():
            return self._apply(images, targets, params)
        # Only the drawn elements are transformed (within-set p is 0.25–0.8) instead of all of them
        # and a selection: default.toml's batches are made 1.08× faster, the same up to 4e-07.
        idx = np.flatnonzero(on)
        sub = {key: np.asarray(value)[idx] for key, value in params.items()}
        rows = torch.from_numpy(idx).to(images.device)
        new_i, new_t = self._apply(images[rows], targets[rows], sub)
        return images.index_copy(0, rows, new_i.to(images.dtype)), targets.index_copy(0, rows, new_t.to(targets.dtype))

    def _apply(self, images, targets, params):
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


def _warp(images: torch.Tensor, targets: torch.Tensor, grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    img = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if targets.shape[1] == 0:
        return img, targets
    tgt = F.grid_sample(targets, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return img, (tgt > 0.5).to(targets.dtype)


def _identity_grid(n: int, h: int, w: int, device: torch.device) -> torch.Tensor:
    theta = torch.eye(2, 3, device=device).expand(n, 2, 3)
    return F.affine_grid(theta, [n, 1, h, w], align_corners=False)


class Affine(Transform):
    """Rotation (degrees), translation (fraction of the size) and isotropic scale."""

    geometric = True

    def __init__(
        self, *, rotation: tuple[float, float], translate: float, scale: tuple[float, float], p: float
    ) -> None:
        super().__init__(p=p)
        self.rotation, self.translate, self.scale = rotation, translate, scale

    def _sample(self, rng, n):
        return {
            "angle": _u(rng, *self.rotation, n),
            "tx": _u(rng, -self.translate, self.translate, n),
            "ty": _u(rng, -self.translate, self.translate, n),
            "scale": _u(rng, *self.scale, n),
        }

    @staticmethod
    def matrix(params: Params) -> torch.Tensor:
        """(n, 2, 3) sampling matrices (output → input, normalised coordinates, x then y).

        A point p of the input lands at ``scale · R(angle) · p + 2·t`` in the output
        (translation t in fractions of the size; normalised coordinates span 2).
        """
        a = np.deg2rad(np.asarray(params["angle"], dtype=np.float64))
        s = np.asarray(params["scale"], dtype=np.float64)
        cos, sin = np.cos(a), np.sin(a)
        # inverse of y = s R x + d:  x = R^T (y - d) / s
        inv = np.stack([np.stack([cos, sin], -1), np.stack([-sin, cos], -1)], -2) / s[:, None, None]
        d = 2 * np.stack([np.asarray(params["tx"], np.float64), np.asarray(params["ty"], np.float64)], -1)
        off = -np.einsum("nij,nj->ni", inv, d)
        return torch.from_numpy(np.concatenate([inv, off[:, :, None]], axis=2)).float()

    def _apply(self, images, targets, params):
        n, _, h, w = images.shape
        grid = F.affine_grid(self.matrix(params).to(images.device), [n, 1, h, w], align_corners=False)
        return _warp(images, targets, grid)


class Elastic(Transform):
    """Smoothed uniform-noise displacement (kornia convention; see module docstring)."""

    geometric = True

    def __init__(self, *, alpha: tuple[float, float], sigma: tuple[float, float], p: float, size: int = 128) -> None:
        super().__init__(p=p)
        self.alpha, self.sigma, self.size = alpha, sigma, size

    def _sample(self, rng, n):
        return {
            "alpha": _u(rng, *self.alpha, n),
            "sigma": _u(rng, *self.sigma, n),
            "noise": rng.uniform(-1, 1, size=(n, 2, self.size, self.size)).astype(np.float32),
        }

    def _apply(self, images, targets, params):
        n, _, h, w = images.shape
        noise = _on(params["noise"], images)
        if noise.shape[-2:] != (h, w):
            noise = F.interpolate(noise, size=(h, w), mode="nearest")
        disp = torch.stack([_gauss(noise[i], float(params["sigma"][i])) for i in range(n)])
        disp = disp * _on(params["alpha"], images).view(n, 1, 1, 1)
        grid = _identity_grid(n, h, w, images.device) + disp.permute(0, 2, 3, 1)
        return _warp(images, targets, grid)


def _blur_matrix(n: int, sigma: float, r: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(n, n) matrix G with ``x @ G`` = the 1D Gaussian blur of x's last axis, reflect padding."""
    # Built in numpy with one bincount: the same sums as a torch index_put_, ~10x less overhead
    # for the (2r+1)·n taps of one 128-wide matrix (a new σ per image, so nothing to cache).
    taps = np.arange(-r, r + 1)
    k = np.exp(-0.5 * (taps / max(sigma, 1e-6)) ** 2).astype(np.float32)
    k = k / k.sum(dtype=np.float32)
    src = np.abs(np.arange(n)[None, :] + taps[:, None])  # (2r+1, n): input index per tap, reflected at 0
    src = np.where(src > n - 1, 2 * (n - 1) - src, src)
    flat = (src * n + np.arange(n)[None, :]).ravel()
    g = np.bincount(flat, weights=np.repeat(k, n), minlength=n * n).astype(np.float32).reshape(n, n)
    return torch.from_numpy(g).to(device=device, dtype=dtype)


def _gauss(x: torch.Tensor, sigma: float, *, radius: int | None = None) -> torch.Tensor:
    """Separable Gaussian blur of (C, H, W) with σ in pixels (reflect padding).

    Each pass is one matrix product with a banded (size × size) matrix that has the reflected
    border folded in: the elastic fields' σ ≈ 8 px kernels (55 taps) cost ~10× less this way than
    as depthwise convolutions on one CPU thread, and the sums are the same.
    """
    r = radius if radius is not None else max(1, math.ceil(3 * sigma))
    r = min(r, x.shape[-1] - 1, x.shape[-2] - 1)
    h, w = x.shape[-2:]
    gw = _blur_matrix(w, sigma, r, x.dtype, x.device)
    gh = gw if h == w else _blur_matrix(h, sigma, r, x.dtype, x.device)
    return gh.T @ (x @ gw)


class Flip(Transform):
    """Mirror along ``axis`` ("horizontal": columns, "vertical": rows)."""

    geometric = True

    def __init__(self, *, axis: str, p: float) -> None:
        super().__init__(p=p)
        if axis not in ("horizontal", "vertical"):
            raise ValueError(f"axis must be 'horizontal' or 'vertical', got {axis!r}")
        self.axis = axis

    def _sample(self, rng, n):
        return {}

    def _apply(self, images, targets, params):
        dim = -1 if self.axis == "horizontal" else -2
        return images.flip(dim), targets.flip(dim)


class BrightnessContrast(Transform):
    """``x' = (x − mean) · c + mean + b`` with b ~ U(brightness), c ~ U(contrast)."""

    def __init__(self, *, brightness: tuple[float, float], contrast: tuple[float, float], p: float) -> None:
        super().__init__(p=p)
        self.brightness, self.contrast = brightness, contrast

    def _sample(self, rng, n):
        return {"b": _u(rng, *self.brightness, n), "c": _u(rng, *self.contrast, n)}

    def _apply(self, images, targets, params):
        b = _on(params["b"], images).view(-1, 1, 1, 1)
        c = _on(params["c"], images).view(-1, 1, 1, 1)
        mean = images.mean(dim=(1, 2, 3), keepdim=True)
        return (images - mean) * c + mean + b, targets


class Sharpness(Transform):
    """torchvision's adjust_sharpness with a fixed factor."""

    def __init__(self, *, factor: float, p: float) -> None:
        super().__init__(p=p)
        self.factor = factor

    def _sample(self, rng, n):
        return {}

    def _apply(self, images, targets, params):
        k = torch.tensor([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]], device=images.device) / 13.0
        blurred = F.conv2d(F.pad(images, (1, 1, 1, 1), mode="replicate"), k.view(1, 1, 3, 3))
        return blurred + self.factor * (images - blurred), targets


class IntensityFlip(Transform):
    """``x' = 1 − x``."""

    def _sample(self, rng, n):
        return {}

    def _apply(self, images, targets, params):
        return 1.0 - images, targets


class GaussianBlur(Transform):
    """Gaussian blur with σ ~ U(sigma) and a fixed kernel size."""

    def __init__(self, *, sigma: tuple[float, float], kernel: int = 5, p: float) -> None:
        super().__init__(p=p)
        if kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"kernel must be an odd positive size, got {kernel}")
        self.sigma, self.kernel = sigma, kernel

    def _sample(self, rng, n):
        return {"sigma": _u(rng, *self.sigma, n)}

    def _apply(self, images, targets, params):
        r = self.kernel // 2
        out = torch.stack([_gauss(images[i], float(params["sigma"][i]), radius=r) for i in range(images.shape[0])])
        return out, targets


class GaussianNoise(Transform):
    """Add N(μ, σ²) noise, μ ~ U(mean), σ ~ U(std)."""

    def __init__(self, *, mean: tuple[float, float], std: tuple[float, float], p: float, size: int = 128) -> None:
        super().__init__(p=p)
        self.mean, self.std, self.size = mean, std, size

    def _sample(self, rng, n):
        return {
            "mu": _u(rng, *self.mean, n),
            "sd": _u(rng, *self.std, n),
            "z": rng.standard_normal((n, 1, self.size, self.size), dtype=np.float32),
        }

    def sample_shared(self, rng: np.random.Generator, n: int) -> Params:
        # μ, σ and whether to apply are shared by the set; the noise itself is drawn per image.
        params = super().sample_shared(rng, n)
        shape = (n, 1, self.size, self.size)
        params["z"] = rng.standard_normal(shape, dtype=np.float32) if self.p > 0 else np.zeros(shape, np.float32)
        return params

    def _apply(self, images, targets, params):
        z = _on(params["z"], images)
        if z.shape[-2:] != images.shape[-2:]:
            z = F.interpolate(z, size=images.shape[-2:], mode="nearest")
        mu = _on(params["mu"], images).view(-1, 1, 1, 1)
        sd = _on(params["sd"], images).view(-1, 1, 1, 1)
        return images + mu + sd * z, targets
