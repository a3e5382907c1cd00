"""pancakes-eval must stay usable without torch."""

from __future__ import annotations

import subprocess
import sys


def test_import_does_not_import_torch():
    code = (
        "import sys, pancakes_eval, pancakes_eval.cli, pancakes_eval.io;"
        "bad = [m for m in ('torch', 'monai') if m in sys.modules];"
        "sys.exit(f'imported {bad}' if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr + proc.stdout


def test_reading_labels_does_not_import_scipy_stats():
    # pancakes segment reads label files through pancakes_eval.io; scipy.stats costs 0.7 s to import
    code = "import sys, pancakes_eval.io; sys.exit('scipy.stats imported' if 'scipy.stats' in sys.modules else 0)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr + proc.stdout


def test_every_public_name_loads():
    import pancakes_eval

    assert set(pancakes_eval.__all__) == {*pancakes_eval._LAZY, "__version__"}
    for name in pancakes_eval.__all__:
        assert getattr(pancakes_eval, name) is not None
    assert sorted(set(pancakes_eval.__all__) - set(dir(pancakes_eval))) == []
