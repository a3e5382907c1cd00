from __future__ import annotations

import os

import pytest
import torch

from pancakes_synth.testing import isolated_cache

# Under pytest-xdist (`nox -s tests` runs this suite on up to 4 workers) each worker gets its share
# of the cores: torch's default of one thread per core in every worker oversubscribes the machine
# and makes the suite slower than one process. Subprocesses the tests start inherit the setting.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    _threads = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ.setdefault("OMP_NUM_THREADS", str(_threads))
    torch.set_num_threads(_threads)


@pytest.fixture(autouse=True, scope="session")
def _synth_cache_in_a_temporary_folder(tmp_path_factory):
    """The test suite never writes to the user's home: synth caches go to a temporary folder."""
    yield from isolated_cache(tmp_path_factory)
