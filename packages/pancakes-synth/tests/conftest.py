from __future__ import annotations

import pytest

from pancakes_synth import ProceduralSource


@pytest.fixture
def small_source(tmp_path):
    """A 24-structure procedural bank (the default 384 takes seconds to build)."""
    return ProceduralSource(bank_size=24, cache_dir=tmp_path / "cache")
