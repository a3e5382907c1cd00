"""Helpers the test suites of the Pancakes packages share."""

from __future__ import annotations

import os
from collections.abc import Iterator

__all__ = ["isolated_cache"]


def isolated_cache(tmp_path_factory) -> Iterator[None]:
    """Body of a session fixture: synth banks and textures are cached in a temporary folder, so a
    test suite never writes to the user's home directory."""
    old = os.environ.get("PANCAKES_SYNTH_CACHE")
    os.environ["PANCAKES_SYNTH_CACHE"] = str(tmp_path_factory.mktemp("synth-cache"))
    yield
    if old is None:
        os.environ.pop("PANCAKES_SYNTH_CACHE", None)
    else:
        os.environ["PANCAKES_SYNTH_CACHE"] = old
