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
    # label_caps[m]: protocol m offers at most this many labels whatever K is asked (the others K),
    # so some protocols are trained and used as coarse partitions beside fine ones; () = none
    label_caps: tuple[int, ...] = ()
    # width of the set-context branch (network/context.py): the images of a set see a summary of
    # the set; 0 = none (images of a set never interact)
    set_context: int = 0
    # the set-context branch also sees each image's own description relative to the set's, so the
    # images of a set are modulated apart (network/context.py)
    context_per_image: bool = False
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
        caps = self.label_caps
        if not isinstance(caps, (list, tuple)) or len(caps) > 64:
            raise ValueError(f"model config label_caps must be a list of at most 64 label counts, got {caps!r}")
        for value in caps:
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 4096:
                raise ValueError(f"model config label_caps entries must be integers in [1, 4096], got {value!r}")
        self.label_caps = tuple(caps)
        value = self.set_context
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 4096:
            raise ValueError(f"model config set_context must be an integer in [0, 4096], got {value!r}")
        if not isinstance(self.context_per_image, bool):
            raise ValueError(f"model config context_per_image must be true or false, got {self.context_per_image!r}")
        if self.context_per_image and not self.set_context:
            raise ValueError("model config context_per_image needs a set-context branch (set_context > 0)")
        for name in ("temperature", "bias_bound"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1e4:
                raise ValueError(f"model config {name} must be a positive number, got {value!r}")

    def label_counts(self, M: int, K: int) -> tuple[int, ...]:
        """Labels of each of M protocols when K are asked: min(K, label_caps[m]), K past the caps."""
        return tuple(min(K, self.label_caps[m]) if m < len(self.label_caps) else K for m in range(M))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PancakesConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown Pancakes config keys: {unknown}")
        return cls(**data)
