"""Small helpers shared by the architectures: activations, option checks, dummy inputs."""

from __future__ import annotations

import math

import torch
from torch import nn

from ...errors import SpecError, unknown_name
from ..types import DataInfo

ACTIVATIONS = {
    "relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
    "leaky_relu": nn.LeakyReLU, "elu": nn.ELU, "silu": nn.SiLU,
}


def act_layer(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise unknown_name("activation", name, ACTIVATIONS)
    return ACTIVATIONS[name]()


def fraction(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise SpecError(f"option '{name}' must be a fraction in [0, 1), got {value!r}")
    return float(value)


def positive(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise SpecError(f"option '{name}' must be a positive integer, got {value!r}")
    return value


def sizes(name: str, value) -> list[int]:
    """``hidden=64`` or ``hidden=[128, 64]`` -> a list of layer widths ([] means none)."""
    values = [value] if isinstance(value, int) else list(value)
    return [positive(name, v) for v in values]


def dummy_input(info: DataInfo, n: int = 2) -> torch.Tensor:
    """A batch shaped like the prepared data (see engine.types): token id 1 (unknown, not pad)
    for text so masked pooling sees real tokens; zeros otherwise."""
    shape = (n, *info.input_shape)
    if info.modality == "text":
        return torch.ones(shape, dtype=torch.int64)
    return torch.zeros(shape)


def n_features(info: DataInfo) -> int:
    return math.prod(info.input_shape)


def text_lengths(tokens: torch.Tensor) -> torch.Tensor:
    """Non-pad tokens per row of a right-padded [N, L] batch (at least 1, so an all-pad row
    still reads one step instead of producing NaN)."""
    return (tokens != 0).sum(dim=1).clamp(min=1)


def masked_mean(h: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Mean of h [N, L, D] over the steps where keep [N, L] is true -> [N, D]."""
    w = keep.unsqueeze(-1).to(h.dtype)                  # [N, L, 1]
    return (h * w).sum(dim=1) / w.sum(dim=1).clamp(min=1.0)


def relative_to_last(net, x):
    """Run ``net`` on a series window measured from its last value, and add that value back.

    x: [N, window, 1] -> [N, horizon]. The model learns the *change* ahead, so the naive
    last-value forecast is its starting point, and a trending series whose test period lies
    outside the training range (CO2) stays in the range the network has seen.
    """
    last = x[:, -1:, :]                                   # [N, 1, 1]
    return net(x - last) + last[:, :, 0]                  # [N, horizon] + [N, 1]
