from __future__ import annotations

import pytest


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
