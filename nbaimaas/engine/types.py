"""The engine's internal contracts: what data preparation hands to model building and training.

    prepare(DataSpec) -> Prepared(info, train, val, test, preprocessor)
    create_model(ModelSpec, info) -> nn.Module            # sizes inferred from info
    preprocessor.transform(raw) -> x                      # predict applies the fitted state

Tensor layouts per modality (N = samples):
    image    x float32 [N, C, H, W]          y int64 [N]
    tabular  x float32 [N, F]                y int64 [N] (classification) | float32 [N, 1]
    series   x float32 [N, window, 1]        y float32 [N, horizon]
    text     x int64   [N, max_len] (0=pad) y int64 [N]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import torch

MODALITIES = ("image", "tabular", "series", "text")
TASKS = ("classification", "regression", "forecast")


@dataclass
class DataInfo:
    """What a model needs to know about prepared data; stored with every trained model."""

    name: str
    modality: str
    task: str
    input_shape: list                  # one sample after preprocessing, e.g. [1, 8, 8]
    n_outputs: int                     # classes, regression targets or forecast horizon
    classes: list = field(default_factory=list)
    vocab_size: int = 0                # text: including the pad (0) and unknown (1) tokens
    counts: dict = field(default_factory=dict)       # {"train": n, "val": n, "test": n}
    class_counts: dict = field(default_factory=dict)  # training split, per class
    nan_report: str = ""               # one line: what was missing and what was done

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DataInfo":
        return cls(**data)


@dataclass
class Split:
    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.x)


class Preprocessor(Protocol):
    """Fitted on the training split only; turns raw inputs into model inputs at predict time."""

    def transform(self, raw: Any) -> torch.Tensor: ...

    def state(self) -> tuple[dict, dict[str, torch.Tensor]]:
        """(JSON-able metadata with a "kind" key, named tensors) for the registry."""
        ...


@dataclass
class Prepared:
    info: DataInfo
    train: Split
    val: Split
    test: Split
    preprocessor: Preprocessor
    raw_test: Any = None               # the test split's raw inputs (images, rows, strings, series)
