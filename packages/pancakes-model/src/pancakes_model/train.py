"""Training entry module: ``python -m pancakes_model.train --config FILE`` (and torchrun's target).

The trainer itself lives in :mod:`pancakes_model.training`; this module only keeps the documented
entry point stable whatever the package layout behind it.
"""

from __future__ import annotations

from pancakes_model.training.cli import main

__all__ = ["main"]

if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
