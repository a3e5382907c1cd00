"""The network: UNet featurizer, protocol/label embedding, sampler, the Pancakes module, weights I/O."""

from __future__ import annotations

from pancakes_model.network.config import PancakesConfig
from pancakes_model.network.embedding import ProtocolEmbedding, check_mk
from pancakes_model.network.model import Pancakes, pancakes
from pancakes_model.network.sampler import LogitFactors, Sampler, bounded_softmax
from pancakes_model.network.unet import ConvBlock, UNet
from pancakes_model.network.weights import load_weights, read_metadata, resolve, save_weights, sha256

__all__ = [
    "ConvBlock",
    "LogitFactors",
    "Pancakes",
    "PancakesConfig",
    "ProtocolEmbedding",
    "Sampler",
    "UNet",
    "bounded_softmax",
    "check_mk",
    "load_weights",
    "pancakes",
    "read_metadata",
    "resolve",
    "save_weights",
    "sha256",
]
