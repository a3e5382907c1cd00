"""The package's public names: all listed, all loadable, loaded only when used."""

from __future__ import annotations

import subprocess
import sys

import pytest

import pancakes_data


def test_public_names_load_lazily_and_all():
    code = "import sys, pancakes_data;sys.exit('sampler imported' if 'pancakes_data.sampler' in sys.modules else 0)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert set(pancakes_data.__all__) == {*pancakes_data._LAZY, "__version__"}
    for name in pancakes_data.__all__:
        assert getattr(pancakes_data, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        pancakes_data.nope  # noqa: B018
