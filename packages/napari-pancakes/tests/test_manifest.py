from __future__ import annotations

import subprocess
import sys


def test_the_npe2_manifest_validates():
    out = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", "napari-pancakes"], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0 and "valid" in out.stdout + out.stderr, out.stdout + out.stderr


def test_the_plugin_imports_no_qt_binding_by_itself():
    from pathlib import Path

    import tomllib

    deps = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not [d for d in deps if d.lower().startswith(("pyqt", "pyside"))]
