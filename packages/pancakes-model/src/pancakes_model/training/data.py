"""From a config's ``[[data.sources]]`` to the set sampler's weighted sources, and the fixed
validation sets drawn from the dev config."""

from __future__ import annotations

from pathlib import Path

from pancakes_model.training.config import TrainConfig
from pancakes_model.training.devset import DevConfig, check_training_sources, family_sets

__all__ = ["open_training_source", "training_sources", "validation_sets"]


def open_training_source(spec: str, *, store: str | Path, set_size: int, seed: int, cache_dir: str | None = None):
    """One source: ``store:NAME`` (a dataset of the local store), ``atlases:PACKAGE`` (the 3D
    atlases a packaged brain source ships, as an Anatomix ``labels`` source) or any pancakes-synth
    spec (``procedural``, ``scenes:…``, ``labels:DIR``, ``shards:DIR``, …)."""
    kind, _, arg = spec.partition(":")
    if kind == "store":
        from pancakes_data import Store

        root = Path(store)
        if not root.is_dir():
            raise FileNotFoundError(f"source {spec!r}: store {root} does not exist; build it with `nox -s data`")
        st = Store(root)
        if arg not in st.datasets:
            raise FileNotFoundError(f"source {spec!r}: no dataset {arg!r} in {root} (it has {sorted(st.datasets)})")
        return st[arg]
    if kind == "atlases":
        from pancakes_data.importers.brain import atlas_files
        from pancakes_synth import LabelMapSource, SetGenerator

        source = LabelMapSource(files=atlas_files(arg.split(";")[0]), cache_dir=cache_dir or None)
        return SetGenerator(source, set_size=set_size, seed=seed)
    from pancakes_synth import open_source

    return open_source(spec, set_size=set_size, seed=seed, cache_dir=cache_dir or None)


def training_sources(cfg: TrainConfig, dev: DevConfig | None) -> list:
    """The weighted :class:`pancakes_data.Source` list of a config (dev families refused)."""
    from pancakes_data import Source

    specs = [s.spec for s in cfg.data.sources]
    if dev is not None:
        check_training_sources(specs, dev, store=cfg.data.store)
    out = []
    for entry in cfg.data.sources:
        if entry.weight == 0:
            continue
        data = open_training_source(
            entry.spec,
            store=cfg.data.store,
            set_size=cfg.train.S[1],
            seed=cfg.train.seed,
            cache_dir=cfg.data.cache_dir,
        )
        out.append(Source(entry.spec, data, entry.weight))
    return out


def validation_sets(cfg: TrainConfig, dev: DevConfig) -> dict[str, list[dict]]:
    """A few fixed sets of every dev family, drawn with another seed than the dev evaluation's,
    so checkpoints are not chosen on the very sets they are evaluated on."""
    return {
        fam.name: family_sets(fam, s=cfg.val.S, n=cfg.val.sets, seed=dev.seed + 1, store=dev.store)
        for fam in dev.families
    }
