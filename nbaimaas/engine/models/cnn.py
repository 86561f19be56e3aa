"""Convolutional networks for images [N, C, H, W]: LeNet-5 and a small ResNet."""

from __future__ import annotations

import torch
from torch import nn

from ...errors import IncompatibleError, SpecError
from ..types import DataInfo
from .catalog import ARCHITECTURES
from .common import act_layer, fraction, positive

POOLS = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}


class LeNet(nn.Module):
    """LeNet-5 (LeCun et al. 1998) with padding=2 on both convolutions, so the two 2x2 poolings
    work from 8x8 (sklearn digits) up; the flatten size is measured, not hard-coded."""

    def __init__(self, info: DataInfo, act: str, dropout: float, pool: str):
        super().__init__()
        c, h, w = info.input_shape
        if min(h, w) < 4:
            raise IncompatibleError(f"lenet needs images of at least 4x4, got {h}x{w}")
        self.features = nn.Sequential(
            nn.Conv2d(c, 6, 5, padding=2), act_layer(act), POOLS[pool](2),    # [N, 6, H/2, W/2]
            nn.Conv2d(6, 16, 5, padding=2), act_layer(act), POOLS[pool](2),   # [N, 16, H/4, W/4]
            nn.Flatten(),                                                    # [N, 16*H/4*W/4]
        )
        with torch.no_grad():
            flat = self.features(torch.zeros(1, c, h, w)).shape[1]
        self.classifier = nn.Sequential(
            nn.Linear(flat, 120), act_layer(act), nn.Dropout(dropout),
            nn.Linear(120, 84), act_layer(act), nn.Dropout(dropout),
            nn.Linear(84, info.n_outputs),
        )

    def forward(self, x):
        # x: [N, C, H, W] -> features [N, flat] -> logits [N, n_classes]
        return self.classifier(self.features(x))


@ARCHITECTURES.register(
    "lenet", family="cnn", modalities=("image",), tasks=("classification",),
    description="LeNet-5: two conv+pool stages and three dense layers (fast on small images)",
)
def build_lenet(info: DataInfo, *, activation: str = "relu", dropout: float = 0.0,
                pool: str = "max") -> nn.Module:
    if pool not in POOLS:
        raise SpecError(f"option 'pool' must be 'max' or 'avg', got {pool!r}")
    return LeNet(info, activation, fraction("dropout", dropout), pool)


class BasicBlock(nn.Module):
    """Two 3x3 convs with batch norm and an identity (or 1x1 projection) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                          nn.BatchNorm2d(c_out))

    def forward(self, x):
        # x: [N, c_in, H, W] -> [N, c_out, H/stride, W/stride]
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """A small ResNet: stem, ``blocks`` BasicBlocks whose width doubles up to 4x ``width``, and
    stride 2 from the second block on while the feature map is at least 4 pixels wide, so the
    same net runs on 8x8 digits and 32x32 colour images."""

    def __init__(self, info: DataInfo, width: int, blocks: int, dropout: float):
        super().__init__()
        c, h, w = info.input_shape
        self.stem = nn.Sequential(nn.Conv2d(c, width, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU())   # [N, width, H, W]
        layers, c_in, side = [], width, min(h, w)
        for i in range(blocks):
            c_out = width * min(2 ** i, 4)
            stride = 2 if i > 0 and side >= 4 else 1
            side = (side + stride - 1) // stride
            layers.append(BasicBlock(c_in, c_out, stride))
            c_in = c_out
        self.blocks = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(c_in, info.n_outputs)

    def forward(self, x):
        # x: [N, C, H, W] -> [N, c_last, h, w] -> pooled [N, c_last] -> logits [N, n_classes]
        x = self.blocks(self.stem(x))
        x = self.pool(x).flatten(1)
        return self.fc(self.dropout(x))


@ARCHITECTURES.register(
    "resnet", family="cnn", modalities=("image",), tasks=("classification",),
    description="small ResNet: residual blocks with batch norm, global average pooling",
)
def build_resnet(info: DataInfo, *, width: int = 16, blocks: int = 4,
                 dropout: float = 0.0) -> nn.Module:
    return ResNet(info, positive("width", width), positive("blocks", blocks),
                  fraction("dropout", dropout))
