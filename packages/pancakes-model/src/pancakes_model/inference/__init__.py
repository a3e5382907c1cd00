"""Inference: preparing an input for the model, predicting, mapping back to its grid (the Python API)."""

from __future__ import annotations

from pancakes_model.inference.mapping import queries_to_labels
from pancakes_model.inference.predict import predict_array, segment

__all__ = ["predict_array", "queries_to_labels", "segment"]
