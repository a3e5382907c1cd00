"""Scene sets: a family's layouts rendered by an imaging model, consistent across the set.

Per set (all parameters drawn first from ``numpy.random.default_rng((seed, index, 0x5CE))``, then
applied deterministically):

1. a family (uniform over the chosen ones) and its experiment (sizes, densities, classes);
2. a mode: ``fields`` — every image a new field of view of the experiment, so the set's labels are
   the *classes* (nuclei, cytoplasm, …) — or ``deformed`` — one layout warped per image, so every
   *instance* keeps its label across the set and the classes group them;
3. an appearance: the family's usual imaging with probability ``p_family_appearance``, any other
   model otherwise; its parameters are shared by the set, its noise drawn per image;
4. per image: the layout (or its warp), per-instance brightness, two texture fields, the image.

With ``p_twins`` > 0 some classes become *twins* of another: the appearance's per-class parameters
(level, stain, …) are copied from it and the two take different texture fields of visible
amplitude, so only their texture tells them apart — the boundaries intensity alone cannot find
(tissues of one mean grey and another grain). 0 (the default) draws nothing more, so recipes
without it see the same sets as before.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from pancakes_synth.recipe import Generator, SynthSet
from pancakes_synth.scenes.appearance import APPEARANCES
from pancakes_synth.scenes.layout import Family, Layout
from pancakes_synth.scenes.populations import Bacteria, Cells, Glands, Nuclei, Vesicles
from pancakes_synth.scenes.regions import Regions
from pancakes_synth.scenes.structures import Fibres, Layers, Membranes, Ribbon, Vessels
from pancakes_synth.scenes.textures import TextureBank
from pancakes_synth.warp import warp_labels, warps_for

__all__ = ["FAMILIES", "GROUPS", "SceneConfig", "SceneGenerator", "make_twins"]

FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Nuclei(),
        Cells(),
        Glands(),
        Bacteria(),
        Vesicles(),
        Vessels(),
        Fibres(),
        Membranes(),
        Layers(),
        Ribbon(),
        Regions(),
    )
}
# Groups of families, for ablations and specs (``scenes:populations``).
GROUPS: dict[str, tuple[str, ...]] = {
    "populations": ("nuclei", "cells", "glands", "bacteria", "vesicles"),
    "curvilinear": ("vessels", "fibres", "membranes"),
    "layered": ("layers", "ribbon"),
    "regions": ("regions",),
}


@dataclass(frozen=True)
class SceneConfig:
    """Ranges of the scene recipe."""

    size: int = 128
    p_deformed: float = 0.5  # for families that support both modes
    p_family_appearance: float = 0.75
    instance_brightness_sd: tuple[float, float] = (0.0, 0.35)
    element_rotation_deg: float = 20.0
    element_scale: tuple[float, float] = (0.9, 1.1)
    element_translation: float = 0.05
    elastic_std: tuple[float, float] = (0.0, 0.03)
    p_twins: float = 0.0  # per unpaired foreground class: the chance it starts a twin pair
    twin_texture_amp: tuple[float, float] = (0.1, 0.25)  # a twin pair's texture amplitude (visible)


def make_twins(
    rng: np.random.Generator, params: dict, tex_choice: np.ndarray, p: float, amp: tuple[float, float]
) -> tuple[dict, np.ndarray, np.ndarray]:
    """Pair classes 1 … n − 1 as twins (each class not yet paired starts a pair with probability ``p``).

    Every per-class entry of the appearance's ``params`` (a (n_classes,) array) of a twin is
    copied from its source class; the pair gets different texture fields (``tex_choice``) and
    texture amplitudes drawn from ``amp``, so they differ in texture only.

    Returns:
        The new params, the new texture choice and ``twin_of`` ((n_classes,), −1 where none).
    """
    n = tex_choice.shape[0]
    twin_of = np.full(n, -1, dtype=np.int64)
    if n < 3:  # a twin needs a second foreground class
        return params, tex_choice, twin_of
    params = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in params.items()}
    tex_choice = tex_choice.copy()
    free = list(range(1, n))
    for c in range(1, n):
        if c not in free or rng.random() >= p:
            continue
        others = [o for o in free if o != c]
        if not others:
            break
        # pairs are disjoint: a class twinned twice would look exactly like its fellow twin
        src = int(others[int(rng.integers(len(others)))])
        free.remove(c)
        free.remove(src)
        for v in params.values():
            if isinstance(v, np.ndarray) and v.shape[:1] == (n,):
                v[c] = v[src]
        tex_choice[c] = 1 - tex_choice[src]
        params["texture_amp"][[c, src]] = rng.uniform(*amp, size=2)
        twin_of[c] = src
    return params, tex_choice, twin_of


class SceneGenerator(Generator):
    """Generate scene sets (same interface as :class:`~pancakes_synth.SetGenerator`).

    Args:
        families: family or group names (default: every family).
        appearance: force one imaging model for every set (default: drawn per set).
        textures: a :class:`TextureBank` (default: procedural noise).
        set_size: S, images per set.
        seed: master seed; set i is a pure function of (seed, i).
        config: recipe ranges.
    """

    def __init__(
        self,
        families: list[str] | None = None,
        *,
        appearance: str | None = None,
        textures: TextureBank | None = None,
        set_size: int = 5,
        seed: int = 0,
        config: SceneConfig | None = None,
    ) -> None:
        names: list[str] = []
        for f in families or sorted(FAMILIES):
            names += list(GROUPS.get(f, (f,)))
        unknown = sorted(set(names) - set(FAMILIES))
        if unknown:
            raise ValueError(f"unknown scene families {unknown}; known: {sorted(FAMILIES)} and groups {sorted(GROUPS)}")
        if appearance is not None and appearance not in APPEARANCES:
            raise ValueError(f"unknown appearance {appearance!r}; known: {sorted(APPEARANCES)}")
        if set_size < 1:
            raise ValueError(f"set_size must be >= 1, got {set_size}")
        self.families = sorted(set(names))
        self.appearance = appearance
        self.textures = textures or TextureBank()
        self.set_size = set_size
        self.seed = int(seed)
        self.config = config or SceneConfig()

    @property
    def spec(self) -> str:
        spec = "scenes" if self.families == sorted(FAMILIES) else "scenes:" + ",".join(self.families)
        if self.appearance:
            spec += f";appearance={self.appearance}"
        if self.textures.spec != "procedural":
            spec += f";textures={self.textures.spec}"
        if self.config.p_twins > 0:
            spec += f";twins={self.config.p_twins:g}"
        return spec

    @property
    def size(self) -> int:
        return self.config.size

    def parameters(self) -> dict:
        return asdict(self.config)

    def _appearance(self, rng: np.random.Generator, family: Family) -> str:
        if self.appearance is not None:
            return self.appearance
        if family.appearances and rng.random() < self.config.p_family_appearance:
            names = sorted(family.appearances)
            w = np.asarray([family.appearances[n] for n in names])
            return names[int(rng.choice(len(names), p=w / w.sum()))]
        return sorted(APPEARANCES)[int(rng.integers(len(APPEARANCES)))]

    def _layouts(self, rng: np.random.Generator, family: Family, exp: dict, deformed: bool) -> list[Layout]:
        cfg, s = self.config, self.set_size
        if not deformed:
            return [family.layout(np.random.default_rng(rng.integers(2**63)), exp, cfg.size) for _ in range(s)]
        base = family.layout(rng, exp, cfg.size)
        theta, disp = warps_for(rng, s, cfg)
        warped = warp_labels(base.instances, theta, disp).numpy()
        return [Layout(w.astype(np.int32), base.classes, base.class_names) for w in warped]

    def generate(self, index: int) -> SynthSet:
        """Set number ``index``: a pure function of the seed and the index."""
        cfg = self.config
        rng = np.random.default_rng([self.seed, int(index), 0x5CE])
        name = self.families[int(rng.integers(len(self.families)))]
        family = FAMILIES[name]
        exp = family.experiment(rng, cfg.size)
        deformed = family.modes[0] == "deformed" if len(family.modes) == 1 else rng.random() < cfg.p_deformed
        look = APPEARANCES[self._appearance(rng, family)]
        layouts = self._layouts(rng, family, exp, deformed)
        n_classes = max(len(lay.class_names) for lay in layouts)
        params = look.sample(rng, n_classes)
        brightness_sd = rng.uniform(*cfg.instance_brightness_sd)
        tex_choice = rng.integers(0, 2, size=n_classes)
        twin_of = None
        if cfg.p_twins > 0:
            params, tex_choice, twin_of = make_twins(rng, params, tex_choice, cfg.p_twins, cfg.twin_texture_amp)
        n_inst = max(len(lay.classes) for lay in layouts)
        shared_factor = np.exp(rng.normal(0, brightness_sd, size=n_inst))  # deformed: one per instance
        images, labels = [], []
        for lay in layouts:
            er = np.random.default_rng(rng.integers(2**63))
            factor = shared_factor if deformed else np.exp(er.normal(0, brightness_sd, size=len(lay.classes)))
            factor[0] = 1.0
            classes = lay.classes[lay.instances]
            textures = np.stack([self.textures.sample(er, cfg.size) for _ in range(2)])
            texture = np.take_along_axis(textures, tex_choice[classes][None], axis=0)[0]
            images.append(look.render(er, classes, factor[lay.instances], texture, params))
            labels.append(lay.instances if deformed else classes)
        class_of = layouts[0].classes.astype(np.int64) if deformed else np.arange(n_classes, dtype=np.int64)
        lab = np.stack(labels).astype(np.int64)
        n_labels = max(int(lab.max()) + 1, len(class_of))
        meta = {
            "index": int(index),
            "family": name,
            "mode": "deformed" if deformed else "fields",
            "appearance": look.name,
            "class_names": list(layouts[0].class_names),
        }
        if twin_of is not None:
            meta["twin_of"] = twin_of.tolist()
        return SynthSet(np.stack(images), lab, n_labels, meta, class_of[:n_labels])

    def __iter__(self):
        i = 0
        while True:
            yield self.generate(i)
            i += 1
