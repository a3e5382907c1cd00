"""Anatomix-style synthetic image sets (paper §3.1 and appendix F.2).

Per set (the *template*):
  1. draw 20–40 structures from the source's bank and give each a random affine (scale, rotation,
     shear, reflection, translation) inside a 128³ volume, optionally inside a deformed foreground
     envelope (with an optional rim label);
  2. draw an axis and a slice index in [25, 100] and evaluate only that plane: every structure's
     field is looked up at the plane's 128² points (one batched trilinear ``grid_sample``) — no
     128³ map is ever built;
  3. with p = 0.5 split every label into connected components; labels under 20 pixels become
     background; ids are made contiguous.
Per element of the set (independently, batched over the set):
  4. affine + elastic deformation of the template (nearest-neighbour, so ids survive);
  5. intensities: a mean and spread per label shared by the set, small jitter per element,
     per-label texture; then Gaussian blur, a smooth multiplicative bias field, Gaussian noise,
     min–max to [0, 1], gamma.

All random parameters are drawn first with a ``numpy.random.Generator`` seeded by
``(seed, set index)``, then applied deterministically: the same seed reproduces a set bit for bit,
whichever worker or order generates it.
"""

from __future__ import annotations

import math
from dataclasses import asdict

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from pancakes_synth.recipe import ElementParams, Generator, GeneratorConfig, SynthSet, TemplateParams
from pancakes_synth.smooth import upsample as _upsample
from pancakes_synth.sources import ProceduralSource, StructureBank
from pancakes_synth.warp import warp_labels, warps_for

__all__ = [
    "ElementParams",
    "GeneratorConfig",
    "SetGenerator",
    "SynthSet",
    "TemplateParams",
]


def _rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random 3D rotation (QR of a Gaussian matrix, sign-fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q *= np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q


def _rotations(rng: np.random.Generator, n: int) -> np.ndarray:
    """n uniformly random 3D rotations, (n, 3, 3) (batched QR of Gaussian matrices)."""
    q, r = np.linalg.qr(rng.standard_normal((n, 3, 3)))
    q = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    q[np.linalg.det(q) < 0, :, 0] *= -1
    return q


def _lattice(start: int, stop: int, count: int, size: int) -> np.ndarray:
    """Volume coordinates of ``count`` points evenly spaced from pixel ``start`` to ``stop − 1``
    (np.linspace's result, without its overhead: it is called ~30 times per set)."""
    step = (stop - 1 - start) / (count - 1)
    return ((2 * (start + step * np.arange(count, dtype=np.float64)) + 1) / size - 1).astype(np.float32)


class SetGenerator(Generator):
    """Generate synthetic sets from a label source.

    Args:
        source: a label source (default: :class:`~pancakes_synth.sources.ProceduralSource`).
        set_size: S, elements per set.
        seed: master seed; set i is a pure function of (seed, i).
        config: recipe ranges.
    """

    def __init__(
        self,
        source=None,
        *,
        set_size: int = 5,
        seed: int = 0,
        config: GeneratorConfig | None = None,
    ) -> None:
        if set_size < 1:
            raise ValueError(f"set_size must be >= 1, got {set_size}")
        self.source = source if source is not None else ProceduralSource()
        self.set_size = set_size
        self.seed = int(seed)
        self.config = config or GeneratorConfig()
        lo, hi = self.config.slice_range
        if not 0 <= lo <= hi < self.config.size:
            raise ValueError(f"slice_range {self.config.slice_range} must lie within [0, {self.config.size})")
        self._bank: StructureBank | None = None
        self._plane_cache: dict[tuple[int, int], torch.Tensor] = {}

    @property
    def spec(self) -> str:
        return self.source.spec

    @property
    def size(self) -> int:
        return self.config.size

    def prepare(self) -> None:
        _ = self.bank  # build (or load from the cache) the structures every set draws from

    def parameters(self) -> dict:
        return asdict(self.config)

    @property
    def bank(self) -> StructureBank:
        if self._bank is None:
            self._bank = self.source.bank(self.seed)
            if len(self._bank) == 0:
                raise ValueError("the label source produced no structures")
        return self._bank

    # ------------------------------------------------------------------ template
    def sample_template_params(self, rng: np.random.Generator) -> TemplateParams:
        cfg = self.config
        n = int(rng.integers(cfg.structures[0], cfg.structures[1] + 1))
        ids = rng.integers(0, len(self.bank), size=n)
        axis = int(rng.integers(0, 3))
        sl = int(rng.integers(cfg.slice_range[0], cfg.slice_range[1] + 1))
        plane = (2 * sl + 1) / cfg.size - 1.0
        scales = np.exp(rng.uniform(math.log(cfg.scale[0]), math.log(cfg.scale[1]), size=n))
        order = np.argsort(-scales)  # paint large structures first so small ones stay visible
        ids, scales = ids[order], scales[order]
        env = env_noise = None
        rim = 0.0
        env_radii, env_rot, env_shift = np.ones(3), np.eye(3), np.zeros(3)
        if rng.random() < cfg.p_envelope:
            env_radii = rng.uniform(0.6, 0.95, size=3)
            env_rot = _rotation(rng)
            env_shift = rng.uniform(-0.1, 0.1, size=3)
            lin = np.diag(1.0 / env_radii) @ env_rot.T
            env = np.concatenate([lin, (-lin @ env_shift)[:, None]], axis=1)
            env_noise = rng.standard_normal((6, 6, 6)) * 0.12
            if rng.random() < cfg.p_rim:
                rim = float(rng.uniform(0.03, 0.08))
        extents = self.bank.extents[torch.from_numpy(ids)].numpy().astype(np.float64)
        rots = _rotations(rng, n)
        shear = np.eye(3)[None] + np.triu(rng.uniform(-0.2, 0.2, size=(n, 3, 3)), 1)
        flips = rng.choice([-1.0, 1.0], size=(n, 3))
        half = scales[:, None] * extents * rng.uniform(0.8, 1.25, size=(n, 3))
        # Centres inside the envelope (or the volume), and near the plane: a structure that
        # misses the plane or lies outside the body is work for nothing.
        centres = (env_radii * rng.uniform(-0.85, 0.85, size=(n, 3))) @ env_rot.T + env_shift
        centres[:, axis] = plane + rng.uniform(-0.7, 0.7, size=n) * scales
        lin = (flips / half)[:, :, None] * (shear @ rots.transpose(0, 2, 1))
        affines = np.concatenate([lin, -(lin @ centres[:, :, None])], axis=2)
        return TemplateParams(ids, affines, axis, sl, env, env_noise, rim, bool(rng.random() < cfg.p_split))

    def _plane_points(self, axis: int, sl: int) -> torch.Tensor:
        """Volume coordinates of the slice's pixels, (H·W, 3) in [-1, 1] (axis order z, y, x)."""
        key = (axis, sl)
        if key not in self._plane_cache:
            n = self.config.size
            ax = (2 * torch.arange(n, dtype=torch.float32) + 1) / n - 1
            u, v = torch.meshgrid(ax, ax, indexing="ij")
            cols = [u, v]
            cols.insert(axis, torch.full_like(u, (2 * sl + 1) / n - 1))
            self._plane_cache[key] = torch.stack(cols, dim=-1).reshape(-1, 3)
        return self._plane_cache[key]

    @staticmethod
    def _lookup(fields: torch.Tensor, local: torch.Tensor) -> torch.Tensor:
        """Trilinear lookup of fields (N, G, G, G) at local coords (N, P, 3) → (N, P)."""
        grid = local.flip(-1)[:, None, None]  # grid_sample wants (x, y, z) = (W, H, D) order
        out = F.grid_sample(fields[:, None].float(), grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        return out[:, 0, 0, 0]

    def _footprints(self, p: TemplateParams) -> list[tuple[int, int, int, int]]:
        """Pixel box (r0, r1, c0, c1) of the plane where each structure's box can be, or empty.

        The box is found on a coarse 33×33 grid of the plane, against the region where the
        structure's field is positive, with a margin of one coarse cell, so only pixels that can be
        inside a structure are looked up.
        """
        _n, size = len(p.structure_ids), self.config.size
        axes = [a for a in range(3) if a != p.axis]
        plane = (2 * p.slice_index + 1) / size - 1.0
        g = np.linspace(-1.0, 1.0, 33)
        u, v = np.meshgrid(g, g, indexing="ij")
        a_u, a_v = p.affines[:, :, axes[0]], p.affines[:, :, axes[1]]  # (n, 3)
        c = p.affines[:, :, p.axis] * plane + p.affines[:, :, 3]
        local = a_u[:, :, None, None] * u + a_v[:, :, None, None] * v + c[:, :, None, None]
        margin = (np.abs(a_u) + np.abs(a_v))[:, :, None, None] * (2.0 / 32)
        box = self.bank.support[p.structure_ids]  # (n, 3, 2)
        hit = ((local >= box[:, :, :1, None] - margin) & (local <= box[:, :, 1:, None] + margin)).all(axis=1)
        rows, cols = hit.any(axis=2), hit.any(axis=1)  # (n, 33) each
        to_px = size / 32
        r_lo = np.maximum(((rows.argmax(1) - 1) * to_px).astype(int), 0)
        r_hi = np.minimum(np.ceil((32 - rows[:, ::-1].argmax(1) + 1) * to_px).astype(int), size)
        c_lo = np.maximum(((cols.argmax(1) - 1) * to_px).astype(int), 0)
        c_hi = np.minimum(np.ceil((32 - cols[:, ::-1].argmax(1) + 1) * to_px).astype(int), size)
        empty = ~rows.any(axis=1)
        r_hi[empty] = r_lo[empty]
        return list(zip(r_lo.tolist(), r_hi.tolist(), c_lo.tolist(), c_hi.tolist()))

    def render_template(self, p: TemplateParams) -> np.ndarray:
        """Template label map (H, W) int64 with contiguous ids 0..L-1 from ``p``."""
        return self.render_template_with_classes(p)[0]

    def render_template_with_classes(self, p: TemplateParams) -> tuple[np.ndarray, np.ndarray]:
        """Template label map (H, W) and the class (L,) of every label: with split components,
        the components of one structure share its class; without, every label is its own."""
        cfg = self.config
        size = cfg.size
        pts = self._plane_points(p.axis, p.slice_index).view(size, size, 3)
        centres = (2 * np.arange(size, dtype=np.float32) + 1) / size - 1
        axes = [a for a in range(3) if a != p.axis]
        plane = (2 * p.slice_index + 1) / size - 1.0
        # Rows reversed: local coordinates come out in (x, y, z) order, as grid_sample wants.
        aff = np.ascontiguousarray(p.affines[:, ::-1, :], dtype=np.float32)
        fields = self.bank.fields
        lab_np = np.zeros((size, size), dtype=np.int64)
        n = len(p.structure_ids)
        for i, (r0, r1, c0, c1) in enumerate(self._footprints(p)):
            h, w = r1 - r0, c1 - c0
            if h <= 0 or w <= 0:
                continue
            # Large footprints belong to large, smooth structures: look their field up on a
            # half-resolution lattice and interpolate the field values (not the labels) back;
            # boundaries move by a small fraction of a pixel and the lookup costs 4× less.
            coarse = h * w > self.config.coarse_lookup_area
            if coarse:
                rows = _lattice(r0, r1, (h + 1) // 2 + 1, size)
                cols = _lattice(c0, c1, (w + 1) // 2 + 1, size)
            else:
                rows, cols = centres[r0:r1], centres[c0:c1]
            a = aff[i]
            # local = A · (point on the plane) + b, with the point affine in (row, col).
            local = (
                rows[:, None, None] * a[:, axes[0]]
                + cols[None, :, None] * a[:, axes[1]]
                + (a[:, p.axis] * plane + a[:, 3])
            )
            val = F.grid_sample(
                fields[int(p.structure_ids[i])][None, None],
                torch.from_numpy(local)[None, None],
                mode="bilinear",
                padding_mode="zeros",
                align_corners=True,
            )[0]  # (1, 1, hh, ww)
            if coarse:
                val = F.interpolate(val, size=(h, w), mode="bilinear", align_corners=True)
            lab_np[r0:r1, c0:c1][val[0, 0].numpy() > 0] = i + 1  # painted in order: later on top
        lab = torch.from_numpy(lab_np)
        lab = lab.reshape(-1)
        flat_pts = pts.reshape(-1, 3)
        offset = n + 1
        if p.envelope is not None:
            env = torch.from_numpy(p.envelope).float()
            e_local = flat_pts @ env[:, :3].T + env[:, 3]
            radial = 1.0 - e_local.norm(dim=1)
            noise = torch.from_numpy(p.envelope_noise).float()[None]
            radial = radial + self._lookup(noise, (flat_pts * 0.9)[None])[0]
            body = radial > 0
            lab = torch.where(body, torch.where(lab > 0, lab + 1, torch.ones_like(lab)), torch.zeros_like(lab))
            if p.rim_width > 0:
                lab = torch.where(body & (radial < p.rim_width), torch.full_like(lab, offset + 1), lab)
        lab = lab.reshape(size, size).numpy().astype(np.int64)
        whole = lab
        if p.split_components:
            lab = self._split(lab)
        lab = self._clean(lab)
        n = int(lab.max()) + 1
        parent = np.zeros(n, np.int64)
        parent[lab.ravel()] = whole.ravel()  # every component lies inside one structure
        parent[0] = 0
        _, classes = np.unique(parent, return_inverse=True)  # contiguous; background stays 0
        return lab, classes.astype(np.int64)

    @staticmethod
    def _split(lab: np.ndarray) -> np.ndarray:
        """Give every connected component (4-connectivity) of every label its own id."""
        out = np.zeros_like(lab)
        nxt = 1
        # find_objects: each label is labelled inside its own bounding box only (much cheaper).
        for value, box in enumerate(ndimage.find_objects(lab), start=1):
            if box is None:
                continue
            comp, k = ndimage.label(lab[box] == value)
            sub = out[box]
            sub[comp > 0] = comp[comp > 0] + (nxt - 1)
            nxt += k
        return out

    def _clean(self, lab: np.ndarray) -> np.ndarray:
        """Labels under ``min_pixels`` → background; remaining ids made contiguous (0 kept)."""
        counts = np.bincount(lab.ravel())
        keep = (counts >= self.config.min_pixels) & (np.arange(counts.size) > 0)
        new_ids = np.where(keep, np.cumsum(keep), 0)
        return new_ids[lab].astype(np.int64)

    # ------------------------------------------------------------------ elements
    def sample_element_params(self, rng: np.random.Generator, n_labels: int) -> ElementParams:
        cfg, s, h = self.config, self.set_size, self.config.size
        theta, disp = warps_for(rng, s, cfg)
        base = rng.uniform(0.0, 1.0, size=n_labels)
        means = base[None] + rng.normal(0.0, cfg.mean_jitter, size=(s, n_labels))
        stds = rng.uniform(*cfg.label_std, size=n_labels)
        tex_amp = np.where(rng.random((n_labels, 2)) < cfg.p_texture, rng.uniform(0.05, 0.25, size=(n_labels, 2)), 0.0)
        texture = rng.standard_normal((s, 1, 8, 8))
        texture_fine = rng.standard_normal((s, 1, 32, 32), dtype=np.float32)
        pixel = rng.standard_normal((s, h, h), dtype=np.float32)
        blur = np.where(rng.random(s) < cfg.p_blur, rng.uniform(*cfg.blur_sigma, size=s), 0.0)
        bias_amp = np.where(rng.random(s) < cfg.p_bias, rng.uniform(*cfg.bias_strength, size=s), 0.0)
        bias = rng.standard_normal((s, 4, 4)) * bias_amp[:, None, None]
        noise = rng.uniform(*cfg.noise_std, size=s)
        gamma = np.where(
            rng.random(s) < cfg.p_gamma, np.exp(rng.uniform(np.log(cfg.gamma[0]), np.log(cfg.gamma[1]), size=s)), 1.0
        )
        return ElementParams(theta, disp, means, stds, tex_amp, texture, texture_fine, pixel, blur, bias, noise, gamma)

    def render_elements(self, template: np.ndarray, p: ElementParams) -> tuple[np.ndarray, np.ndarray]:
        """Deform the template and paint intensities: images (S, H, W) float32, labels (S, H, W)."""
        s, h = self.set_size, self.config.size
        labels = warp_labels(template, p.theta, p.displacement)  # (S, H, W)

        means = torch.from_numpy(p.means).float()
        stds = torch.from_numpy(p.stds).float()
        pixel_noise = torch.from_numpy(p.pixel_noise).float()
        img = torch.gather(means, 1, labels.flatten(1)).view(s, h, h)
        img += stds[labels] * pixel_noise
        # Texture terms only where some label has one (p_texture; the amplitude is 0 otherwise).
        amp = torch.from_numpy(np.ascontiguousarray(p.texture_amp.T)).float()  # (2, L)
        if bool(amp[0].any()):
            img += amp[0][labels] * _upsample(torch.from_numpy(p.texture).float(), h)[:, 0]
        if bool(amp[1].any()):
            fine = _upsample(torch.from_numpy(p.texture_fine), h)[:, 0]
            img += amp[1][labels] * fine / (fine.std() + 1e-6)
        img = _blur(img, torch.from_numpy(p.blur_sigma).float())
        if bool(np.any(p.bias)):
            img *= torch.exp(_upsample(torch.from_numpy(p.bias).float()[:, None], h)[:, 0])
        img += torch.from_numpy(p.noise_std).float()[:, None, None] * pixel_noise.roll(7, dims=1)
        lo, hi = torch.aminmax(img.flatten(1), dim=1)
        img.sub_(lo[:, None, None]).div_((hi - lo).clamp_min(1e-6)[:, None, None]).clamp_(0, 1)
        for i in np.flatnonzero(p.gamma != 1.0):  # gamma only where drawn (p_gamma)
            img[i] **= float(p.gamma[i])
        return img.numpy().astype(np.float32), labels.numpy()

    # ------------------------------------------------------------------ public
    def generate(self, index: int) -> SynthSet:
        """Set number ``index`` (a pure function of seed and index)."""
        rng = np.random.default_rng([self.seed, int(index)])
        tp = self.sample_template_params(rng)
        template, classes = self.render_template_with_classes(tp)
        n_labels = int(template.max()) + 1
        ep = self.sample_element_params(rng, n_labels)
        images, labels = self.render_elements(template, ep)
        meta = {"index": int(index), "axis": tp.axis, "slice": tp.slice_index, "split": tp.split_components}
        return SynthSet(images, labels, n_labels, meta, classes)

    def __iter__(self):
        i = 0
        while True:
            yield self.generate(i)
            i += 1


def _blur(img: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur of (S, H, W) with one σ per element (σ = 0: unchanged), in place;
    only the elements with σ > 0 are convolved (half of them or fewer, ``p_blur``)."""
    chosen = torch.nonzero(sigma > 0).flatten()
    if chosen.numel() == 0:
        return img
    radius = 3
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x[None] / sigma[chosen, None]) ** 2)
    k = k / k.sum(1, keepdim=True)
    n = chosen.numel()
    inp = img[chosen][None]  # (1, S', H, W): groups = S' gives each element its own kernel
    inp = F.conv2d(F.pad(inp, (radius, radius, 0, 0), mode="reflect"), k[:, None, None, :], groups=n)
    inp = F.conv2d(F.pad(inp, (0, 0, radius, radius), mode="reflect"), k[:, None, :, None], groups=n)
    img[chosen] = inp[0]
    return img
