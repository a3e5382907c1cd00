"""``match.json``: the choice ``pancakes match`` made, read back for ``segment --match`` (and
written by the match run). Every field is checked — a hand-edited or foreign file is refused with
the field and value named, never applied as empty masks."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from pancakes_model.app.common import InputError, check_same_run
from pancakes_model.inference.matching import MatchResult

__all__ = ["MATCH_FORMAT", "load_match", "match_record"]

MATCH_FORMAT = "pancakes-match/1"


def _int(value, what: str, lo: int, hi: int, p: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InputError(f"--match: {p}: {what} must be a whole number in {lo}..{hi}, got {value!r}")
    return value


def load_match(path: str | Path, *, M: int, K: int, model_sha256: str) -> MatchResult:
    """A ``match.json`` to reuse; refused when it is not one, when any field is out of range, or when
    M, K or the model differ (protocol numbers would mean something else)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"--match: {p} is not a pancakes match.json ({exc})") from exc
    if not isinstance(data, dict):
        raise InputError(f"--match: {p} is not a pancakes match.json (a JSON {type(data).__name__}, not an object)")
    if data.get("format") != MATCH_FORMAT:
        got = data.get("format")
        raise InputError(f"--match: {p} is not a pancakes match.json (format {got!r}, not {MATCH_FORMAT!r})")
    check_same_run(data, M=M, K=K, model_sha256=model_sha256, flag="--match", source=p)
    protocol = _int(data.get("protocol"), "protocol", 0, M - 1, p)
    raw = data.get("assignment")
    if not isinstance(raw, dict) or not raw:
        raise InputError(f"--match: {p}: assignment must map mask values to labels, got {raw!r}")
    assignment: dict[int, tuple[int, ...]] = {}
    for value, labels in raw.items():
        try:
            v = int(value)
        except ValueError:
            raise InputError(f"--match: {p}: assignment key {value!r} is not a mask value") from None
        _int(v, "a mask value", 1, 65535, p)
        if not isinstance(labels, list) or not labels:
            raise InputError(f"--match: {p}: assignment {value!r} must list labels, got {labels!r}")
        assignment[v] = tuple(_int(k, "a label", 0, K - 1, p) for k in labels)
    score = data.get("score")
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0 <= score <= 1:
        raise InputError(f"--match: {p}: score must be a Dice in [0, 1], got {score!r}")
    return MatchResult(protocol, assignment, float(score), [])


def match_record(
    result: MatchResult, *, M: int, K: int, model: str, model_sha256: str, examples: Sequence[str | Path] = ()
) -> dict:
    """What ``match.json`` holds (read back by :func:`load_match`)."""
    return {
        "format": MATCH_FORMAT,
        "M": M,
        "K": K,
        "model": str(model),
        "model_sha256": model_sha256,
        "protocol": result.protocol,
        "assignment": {str(v): list(ks) for v, ks in result.assignment.items()},
        "score": round(result.score, 6),
        "warning": result.warning,
        "examples": [str(e) for e in examples],
        "ranking": [
            {"protocol": c.protocol, "labels": list(c.labels), "score": round(c.score, 6), "structure": c.structure}
            for c in result.ranking
        ],
    }
