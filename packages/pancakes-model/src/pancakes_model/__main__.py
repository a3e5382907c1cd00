"""``python -m pancakes_model``: the ``pancakes`` command under a name no other package can take."""

from __future__ import annotations

from pancakes_model.app.cli import main

if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
