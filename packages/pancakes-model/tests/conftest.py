from __future__ import annotations

import pytest

from pancakes_synth.testing import isolated_cache


@pytest.fixture(autouse=True, scope="session")
def _synth_cache_in_a_temporary_folder(tmp_path_factory):
    """The test suite never writes to the user's home: synth caches go to a temporary folder."""
    yield from isolated_cache(tmp_path_factory)
