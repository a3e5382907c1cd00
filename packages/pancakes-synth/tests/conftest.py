from __future__ import annotations

import pytest

from pancakes_synth import ProceduralSource


@pytest.fixture
def small_source(tmp_path):
    """A 24-structure procedural bank (the default 384 takes seconds to build)."""
    return ProceduralSource(bank_size=24, cache_dir=tmp_path / "cache")


@pytest.fixture(autouse=True, scope="session")
def _synth_cache_in_a_temporary_folder(tmp_path_factory):
    """The test suite never writes to the user's home: synth banks and textures are cached here."""
    import os

    old = os.environ.get("PANCAKES_SYNTH_CACHE")
    os.environ["PANCAKES_SYNTH_CACHE"] = str(tmp_path_factory.mktemp("synth-cache"))
    yield
    if old is None:
        os.environ.pop("PANCAKES_SYNTH_CACHE", None)
    else:
        os.environ["PANCAKES_SYNTH_CACHE"] = old
