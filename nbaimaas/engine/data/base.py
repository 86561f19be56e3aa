"""Pieces every preprocessor shares: an invertible affine scaler and the identity inverse.

Fitted statistics are kept as float32 tensors from the start, so ``state()`` -> safetensors ->
``load_preprocessor`` reproduces transforms bit for bit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ...errors import DataError


class Affine:
    """x' = (x - shift) / scale per feature: 'standard' (mean, std), 'minmax' (min, range), 'none'."""

    def __init__(self, shift: torch.Tensor, scale: torch.Tensor):
        self.shift = shift.to(torch.float32)    # [F]
        self.scale = scale.to(torch.float32)    # [F]

    @classmethod
    def fit(cls, values: np.ndarray, method: str) -> "Affine":
        """Fit on training values, float [N, F] (never on val/test: that would leak)."""
        values = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
        n_features = values.shape[1]
        if method == "none" or len(values) == 0:
            shift, scale = np.zeros(n_features), np.ones(n_features)
        elif method == "minmax":
            shift, scale = values.min(axis=0), values.max(axis=0) - values.min(axis=0)
        else:
            shift, scale = values.mean(axis=0), values.std(axis=0)
        scale = np.where(scale > 1e-12, scale, 1.0)  # constant features stay finite
        return cls(torch.from_numpy(shift), torch.from_numpy(scale))

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.shift) / self.scale

    def invert(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift

    def tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        return {f"{prefix}_shift": self.shift, f"{prefix}_scale": self.scale}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], prefix: str) -> "Affine":
        return cls(tensors[f"{prefix}_shift"], tensors[f"{prefix}_scale"])


class BasePreprocessor:
    """``transform`` raw -> model input; ``inverse_targets`` model output -> target units."""

    kind = ""

    def transform(self, raw: Any) -> torch.Tensor:  # pragma: no cover - every subclass overrides
        raise NotImplementedError

    def transform_many(self, raws: list) -> list:
        """``transform`` of each of several requests' inputs: a tensor, or the exception for
        that one input (a bad request fails alone). Subclasses whose rows are independent
        transform them in one pass, which at serving rates costs less than one pass each."""
        out: list = []
        for raw in raws:
            try:
                out.append(self.transform(raw))
            except Exception as exc:  # noqa: BLE001 - handed back to the caller, per input
                out.append(exc)
        return out

    def state(self) -> tuple[dict, dict[str, torch.Tensor]]:  # pragma: no cover
        raise NotImplementedError

    def inverse_targets(self, y_scaled: torch.Tensor) -> torch.Tensor:
        """Identity: nothing was scaled (classification labels, images, text)."""
        return y_scaled


def as_array(raw: Any, what: str) -> np.ndarray:
    """numpy from numpy / torch / lists, refusing non-numeric data in one line."""
    if hasattr(raw, "detach") and hasattr(raw, "cpu"):
        raw = raw.detach().cpu().numpy()
    try:
        arr = np.asarray(raw)
    except ValueError as e:   # ragged lists
        raise DataError(f"{what} must be a rectangular numeric array ({e})") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise DataError(f"{what} must be numeric; got dtype {arr.dtype}")
    return arr
