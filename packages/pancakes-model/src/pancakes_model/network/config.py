"""Architecture hyper-parameters, stored beside the weights (no import of the network)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["PancakesConfig"]

# Sizes beyond these are not a Pancakes model but a typo or a hostile file (a 1e9-channel layer
# would try to allocate terabytes before any check could run).
_LIMITS = {"in_channels": 16, "features": 1024, "levels": 8, "embed_dims": 512, "sampler_dims": 1024}


@dataclass
class PancakesConfig:
    """Architecture hyper-parameters."""

    in_channels: int = 1
    features: int = 32
    levels: int = 4
    embed_dims: int = 12  # J per index; v has 2J entries
    sampler_dims: int = 32
    sampler_hidden: int = 64
    temperature: float = 10.0
    bias_bound: float = 2.0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("in_channels", "features", "levels", "embed_dims", "sampler_dims", "sampler_hidden"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"model config {name} must be a positive integer, got {value!r}")
            if value > _LIMITS.get(name, 4096):
                raise ValueError(
                    f"model config {name}={value} is beyond any Pancakes model (max {_LIMITS.get(name, 4096)})"
                )
        if self.embed_dims % 2:
            raise ValueError(f"model config embed_dims must be even, got {self.embed_dims}")
        for name in ("temperature", "bias_bound"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1e4:
                raise ValueError(f"model config {name} must be a positive number, got {value!r}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PancakesConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown Pancakes config keys: {unknown}")
        return cls(**data)
