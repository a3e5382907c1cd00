"""A run's log: ``log.jsonl`` (every logged row) and ``metrics.csv`` (validation rows), written by
rank 0; on resume the rows after the restored step are dropped so the log continues exactly."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from pancakes_data.io import write_text

__all__ = ["RunLog"]


class RunLog:
    """Append-only rows of one run folder (nothing is written when ``enabled`` is false)."""

    def __init__(self, out: Path, *, enabled: bool = True) -> None:
        self.out, self.enabled = Path(out), enabled

    @property
    def path(self) -> Path:
        return self.out / "log.jsonl"

    def append(self, row: dict) -> None:
        if not self.enabled:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        if row["kind"] == "val":
            path = self.out / "metrics.csv"
            flat = {k: (json.dumps(v) if isinstance(v, list) else v) for k, v in row.items()}
            new = not path.is_file()
            with path.open("a", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=list(flat))
                if new:
                    w.writeheader()
                w.writerow(flat)

    def rows(self) -> list[dict]:
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line]

    def truncate(self, step: int) -> None:
        """Keep the rows up to ``step`` (a resumed run repeats nothing and loses nothing)."""
        if self.enabled and self.path.is_file():
            keep = [json.dumps(r) + "\n" for r in self.rows() if r["step"] <= step]
            write_text(self.path, "".join(keep))
