"""The source kinds training and the dev sets add to pancakes-synth's spec parser
(:func:`pancakes_synth.open_source`, ``kinds=``): the spec language stays one.

    store:NAME          a dataset of the local store (``nox -s data``)
    atlases:PACKAGE     the 3D atlases a packaged brain source ships, as an Anatomix ``labels`` source
"""

from __future__ import annotations

from pathlib import Path

from pancakes_data import Store
from pancakes_data.importers.brain import atlas_files
from pancakes_model.training.config import ConfigError
from pancakes_synth import LabelMapSource, SetGenerator
from pancakes_synth.specs import Opener, Opening, Spec

__all__ = ["project_kinds"]


def project_kinds(store: str | Path) -> dict[str, Opener]:
    """Openers of the ``store:`` and ``atlases:`` kinds, reading datasets from ``store``."""

    def open_store(spec: Spec, how: Opening):
        root = Path(store)
        if not root.is_dir():
            raise ConfigError(f"source {spec.head!r}: store {root} does not exist; build it with `nox -s data`")
        datasets = Store(root).datasets
        if spec.arg not in datasets:
            raise ConfigError(f"source {spec.head!r}: no dataset {spec.arg!r} in {root} (it has {sorted(datasets)})")
        return datasets[spec.arg]

    def open_atlases(spec: Spec, how: Opening):
        source = LabelMapSource(files=atlas_files(spec.arg), cache_dir=how.cache_dir)
        return SetGenerator(source, set_size=how.set_size, seed=how.seed)

    return {"store": open_store, "atlases": open_atlases}
