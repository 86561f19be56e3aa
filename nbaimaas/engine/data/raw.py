"""Raw data as loaded, before any splitting or fitting: the one shape every source returns.

Built-in loaders, inline arrays, CSV files and image folders all become a ``RawData``; from there
one code path splits, cleans and preprocesses, so a user's CSV gets exactly the treatment the
built-in tables get.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...errors import DataError

INSTALL_HINT = "pip install nbaimaas[data]"


@dataclass
class RawData:
    """Inputs and targets in their raw units.

    x per modality:
        image    numpy [N, C, H, W] in raw units (0..raw_max)
        tabular  numpy float [N, F], or a pandas DataFrame of feature columns (``frame=True``)
        series   numpy float [T] (may hold NaN)
        text     list[str] of length N
    y: int64 [N] class indices (classification), float [N] (regression), None (series).
    """

    name: str
    modality: str
    task: str
    x: Any
    y: np.ndarray | None = None
    classes: list = field(default_factory=list)
    raw_max: float = 1.0               # images: divide by this before standardising
    columns: list = field(default_factory=list)  # tabular: feature column names
    frame: bool = False                # tabular: x is a DataFrame (raw_test stays one)
    description: str = ""
    missing_targets: int = 0           # rows dropped at load because their target was missing

    def __len__(self) -> int:
        return len(self.x)

    def subset(self, idx: np.ndarray) -> "RawData":
        """The samples at ``idx`` (a copy; cached raw loads are never mutated)."""
        if self.modality == "text":
            x = [self.x[i] for i in idx]
        elif self.frame:
            x = self.x.iloc[idx].reset_index(drop=True)
        else:
            x = np.asarray(self.x)[idx]
        y = None if self.y is None else self.y[idx]
        return RawData(self.name, self.modality, self.task, x, y, list(self.classes), self.raw_max,
                       list(self.columns), self.frame, self.description, self.missing_targets)


def need(module: str, dataset: str, package: str | None = None) -> Any:
    """Import an optional dependency, or say in one line what to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise DataError(f"dataset '{dataset}' needs {package or module}", INSTALL_HINT) from None


def encode_labels(labels: Any) -> tuple[np.ndarray, list[str]]:
    """Class names are the sorted unique labels as strings; y holds their int64 indices."""
    arr = np.asarray(labels)
    uniques = np.unique(arr)
    if np.issubdtype(arr.dtype, np.number):
        uniques = np.sort(uniques)
    names = [_label_name(u) for u in uniques]
    index = {u: i for i, u in enumerate(uniques.tolist())}
    y = np.array([index[v] for v in arr.tolist()], dtype=np.int64)
    return y, names


def _label_name(value: Any) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)
