"""Input coercion shared by every metric.

Inputs may be numpy arrays, nested lists, or array-likes from other libraries (torch tensors
included). Torch is duck-typed: anything with ``.detach()``/``.cpu()``/``.numpy()`` or
``__array__`` is converted without importing torch here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["as_numpy", "check_binary", "check_labels", "check_same_shape", "parse_spacing"]


def as_numpy(x: Any, *, name: str = "array") -> np.ndarray:
    """Convert an array-like (numpy, list, torch tensor, …) to a numpy array without copying
    where possible."""
    if isinstance(x, np.ndarray):
        return x
    # torch.Tensor (and look-alikes): detach from autograd, move to host, then view as numpy.
    if hasattr(x, "detach") and hasattr(x, "cpu") and hasattr(x, "numpy"):
        return x.detach().cpu().numpy()
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: cannot convert object of type {type(x).__name__} to an array") from exc


def check_same_shape(a: np.ndarray, b: np.ndarray, *, names: tuple[str, str]) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} and {names[1]} must have the same shape, got {a.shape} and {b.shape}")


def check_binary(x: np.ndarray, *, name: str) -> np.ndarray:
    """Return ``x`` as bool, refusing values other than 0/1 (and NaN)."""
    if x.dtype == bool:
        return x
    if x.size == 0:
        return x.astype(bool)
    if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
        bad = x[~np.isfinite(x)].ravel()[0]
        raise ValueError(f"{name} contains a non-finite value ({bad}); expected a binary mask")
    values = np.unique(x)
    extra = values[(values != 0) & (values != 1)]
    if extra.size:
        raise ValueError(
            f"{name} must be binary (0/1 or bool), found values {extra[:5].tolist()}" + (" …" if extra.size > 5 else "")
        )
    return x.astype(bool)


def check_labels(x: np.ndarray, *, name: str) -> np.ndarray:
    """Return ``x`` as an int64 label map, refusing non-integers and negatives."""
    if x.dtype == bool:
        return x.astype(np.int64)
    if np.issubdtype(x.dtype, np.floating):
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{name} contains non-finite values; expected integer labels")
        if not np.all(np.equal(np.mod(x, 1), 0)):
            bad = x[np.mod(x, 1) != 0].ravel()[0]
            raise ValueError(f"{name} must hold integer labels, found {bad!r}")
    elif not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"{name} must hold integer labels, got dtype {x.dtype}")
    if x.size and not np.issubdtype(x.dtype, np.unsignedinteger) and x.min() < 0:
        raise ValueError(f"{name} must hold non-negative labels, found {x.min()}")
    return x.astype(np.int64, copy=False)


def parse_spacing(spacing: float | Sequence[float] | None, ndim: int) -> tuple[float, ...]:
    """Validate voxel spacing: ``None`` → unit, a scalar → isotropic, a sequence → one per axis."""
    if spacing is None:
        return (1.0,) * ndim
    if np.isscalar(spacing):
        values = (float(spacing),) * ndim  # type: ignore[arg-type]
    else:
        values = tuple(float(s) for s in spacing)  # type: ignore[union-attr]
        if len(values) != ndim:
            raise ValueError(f"spacing has {len(values)} entries but the masks have {ndim} spatial axes")
    if not all(np.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"spacing must be positive and finite, got {values}")
    return values
