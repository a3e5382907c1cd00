"""What ``segment`` and ``match`` share: the user-error type, the checks of their flags, the run
identity rule and which inputs the overview shows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pancakes_data import UserError
from pancakes_model.network import check_mk

__all__ = [
    "AXES",
    "MAX_K",
    "MAX_M",
    "MAX_SHOWN",
    "InputError",
    "check_device",
    "check_mk_limits",
    "check_same_run",
    "shown_indices",
]

AXES = {"sagittal": 0, "coronal": 1, "axial": 2}
MAX_SHOWN = 24  # inputs drawn in overview.png / report.html (statistics cover every input)
MAX_M, MAX_K = 256, 65536  # K labels must fit the uint16 label files; M the overview and file names


class InputError(UserError):
    """A problem with the user's input to ``segment`` or ``match`` (one line, exit code 2)."""


def check_mk_limits(M: int, K: int) -> None:
    try:
        check_mk(M, K)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    if M > MAX_M:
        raise InputError(f"-M {M} is too many protocols (at most {MAX_M})")
    if K > MAX_K:
        raise InputError(f"-K {K} labels cannot be stored in 16-bit label files (at most {MAX_K})")


def check_device(device: str) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InputError(f"--device {device!r} is not a device torch knows (use cpu or cuda)") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {device}: CUDA is not available in this torch build")
    if dev.type not in ("cpu", "cuda"):
        raise InputError(f"--device {device!r}: use cpu or cuda")
    return dev


def shown_indices(n: int, limit: int = MAX_SHOWN) -> list[int]:
    """Which inputs the overview shows: all, or ``limit`` evenly spread over them."""
    if n <= limit:
        return list(range(n))
    return sorted({round(i) for i in np.linspace(0, n - 1, limit)})


def check_same_run(earlier: dict, *, M: int, K: int, model_sha256: str, flag: str, source: Path) -> None:
    """Protocol numbers are defined by (M, K, model): refuse reusing an earlier run's choice
    (``--like``, ``--match``) when any of the three differs, naming each difference."""
    diffs = [
        f"{k}: earlier {earlier.get(k)!r}, now {v!r}"
        for k, v in (("M", M), ("K", K), ("model_sha256", model_sha256))
        if earlier.get(k) != v
    ]
    if diffs:
        raise InputError(
            f"{flag}: {source} was made with another model or M/K ({'; '.join(diffs)}); protocol numbers are "
            "defined by (M, K, model), so use the same -M, -K and --model"
        )
