"""The data of a synthetic set: the recipe's ranges, the parameters drawn per set and per image,
and the set itself (shared by every generator and by shards)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["ElementParams", "Generator", "GeneratorConfig", "SynthSet", "TemplateParams"]


@dataclass(frozen=True)
class GeneratorConfig:
    """Ranges of the recipe (defaults follow the paper's appendix F.2 and anatomix)."""

    size: int = 128
    structures: tuple[int, int] = (20, 40)
    slice_range: tuple[int, int] = (25, 100)
    scale: tuple[float, float] = (0.1, 0.8)  # half-size of a structure, fraction of the volume
    p_envelope: float = 0.5
    p_rim: float = 0.5
    p_split: float = 0.5
    min_pixels: int = 20
    coarse_lookup_area: int = 48 * 48  # footprints larger than this are looked up at half resolution
    element_rotation_deg: float = 15.0
    element_scale: tuple[float, float] = (0.9, 1.1)
    element_translation: float = 0.05
    elastic_std: tuple[float, float] = (0.0, 0.03)
    label_std: tuple[float, float] = (0.0, 0.06)
    mean_jitter: float = 0.03
    p_texture: float = 0.3
    p_blur: float = 0.5
    blur_sigma: tuple[float, float] = (0.3, 1.2)
    p_bias: float = 0.8
    bias_strength: tuple[float, float] = (0.0, 0.4)
    noise_std: tuple[float, float] = (0.0, 0.04)
    p_gamma: float = 0.5
    gamma: tuple[float, float] = (0.6, 1.6)


@dataclass
class TemplateParams:
    """Everything that decides a set's template (drawn before anything is rendered)."""

    structure_ids: np.ndarray  # (n,) indices into the bank, drawn order = paint order
    affines: np.ndarray  # (n, 3, 4) volume coords → structure-local coords, both in [-1, 1]³
    axis: int
    slice_index: int
    envelope: np.ndarray | None  # (3, 4) affine of the envelope ellipsoid, or None
    envelope_noise: np.ndarray | None  # (6, 6, 6) coarse deformation of the envelope
    rim_width: float  # 0 for no rim label
    split_components: bool


@dataclass
class ElementParams:
    """Per-element parameters of one set with S elements and L template labels."""

    theta: np.ndarray  # (S, 2, 3) affine of the sampling grid
    displacement: np.ndarray  # (S, 2, 5, 5) coarse elastic displacement
    means: np.ndarray  # (S, L) label means (shared + jitter)
    stds: np.ndarray  # (L,)
    texture_amp: np.ndarray  # (L, 2)
    texture: np.ndarray  # (S, 1, 8, 8) coarse noise of the low-frequency texture
    texture_fine: np.ndarray  # (S, 1, 32, 32) coarse noise of the high-frequency texture
    pixel_noise: np.ndarray  # (S, H, W) standard normal
    blur_sigma: np.ndarray  # (S,) 0 = no blur
    bias: np.ndarray  # (S, 4, 4) coarse log-bias field, already scaled
    noise_std: np.ndarray  # (S,)
    gamma: np.ndarray  # (S,) 1 = none


@dataclass
class SynthSet:
    """One synthetic set.

    Attributes:
        images: (S, H, W) float32 in [0, 1].
        labels: (S, H, W) int64 in 0 … L−1; label l means the same structure in every image.
        n_labels: L.
        meta: how the set was made (family, appearance, index, …).
        classes: (L,) the class of every label (classes[0] = 0, the background class): labels of
            one class (the components of one split structure, the nuclei of one population) form
            the coarser targets. ``None``: every label is its own class.
    """

    images: np.ndarray
    labels: np.ndarray
    n_labels: int
    meta: dict = field(default_factory=dict)
    classes: np.ndarray | None = None


@runtime_checkable
class Generator(Protocol):
    """What every synthetic generator offers (the Anatomix, scene and held-out ones): endless sets
    by index, a pure function of (seed, index); writers and the set sampler rely on nothing else.

    The generators subclass it for its defaults: endless length, ``get`` as ``generate`` and
    nothing to ``prepare``; they implement ``size``, ``spec``, ``generate`` and ``parameters``.

    Attributes:
        set_size: S, images per set.
        size: side of the square images.
        spec: the source spec that reopens it (:mod:`pancakes_synth.specs`).
    """

    set_size: int

    @property
    def size(self) -> int: ...

    @property
    def spec(self) -> str: ...

    def __len__(self) -> int:
        return 2**62  # endless: any index is a set

    def get(self, index: int) -> SynthSet:
        return self.generate(index)

    def generate(self, index: int) -> SynthSet: ...

    def prepare(self) -> None:
        """Build or load what every set draws from (structure banks, textures), once per process;
        by default there is nothing to build."""

    def parameters(self) -> dict[str, Any]:
        """The recipe's ranges, recorded in a generated dataset's manifest."""
