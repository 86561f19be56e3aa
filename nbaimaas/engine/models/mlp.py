"""A multilayer perceptron: the baseline for tables, and for images or windows flattened."""

from __future__ import annotations

from torch import nn

from ..types import DataInfo
from .catalog import ARCHITECTURES
from .common import act_layer, fraction, n_features, relative_to_last, sizes


class MLP(nn.Module):
    def __init__(self, n_in: int, hidden: list[int], n_out: int, act: str, dropout: float,
                 series: bool = False):
        super().__init__()
        self.series = series
        layers: list[nn.Module] = [nn.Flatten()]
        width = n_in
        for h in hidden:
            layers += [nn.Linear(width, h), act_layer(act)]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, n_out))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        # x: [N, F] tabular | [N, C, H, W] image | [N, window, 1] series
        if self.series:
            return relative_to_last(self.net, x)
        return self.net(x)  # flattened to [N, prod(input_shape)] -> [N, n_outputs]


@ARCHITECTURES.register(
    "mlp", family="mlp", modalities=("tabular", "image", "series"),
    tasks=("classification", "regression", "forecast"),
    description="fully connected layers on the flattened input",
)
def build_mlp(info: DataInfo, *, hidden=(128,), dropout: float = 0.0,
              activation: str = "relu") -> nn.Module:
    return MLP(n_features(info), sizes("hidden", hidden), info.n_outputs, activation,
               fraction("dropout", dropout), series=info.modality == "series")
