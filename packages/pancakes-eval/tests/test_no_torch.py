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
