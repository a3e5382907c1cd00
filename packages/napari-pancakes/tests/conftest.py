from __future__ import annotations

import os

import pytest

# Headless: under Xvfb (xvfb-run, what `nox -s tests` uses) Qt draws with Mesa's software OpenGL;
# without a display Qt's offscreen platform still builds the widgets, but napari's canvas needs GL.
if not os.environ.get("DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """napari's make_napari_viewer reads the test's outcome from ``item.rep_call`` (as napari's own
    test suite records it) to decide whether to check for leaked widgets."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
