"""Series: fill gaps, scale with the training part's statistics, cut sliding windows.

Window i of a (scaled) series s: input s[i : i+window], target s[i+window : i+window+horizon].
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ...errors import DataError
from .base import Affine, BasePreprocessor, as_array
from .clean import fill_series


class SeriesPreprocessor(BasePreprocessor):
    """Recent raw values (1-D, last ``window`` used) or [N, window] -> float32 [N, window, 1]."""

    kind = "series"

    def __init__(self, window: int, horizon: int, nan: str, fill: float, scaler: Affine):
        self.window, self.horizon = int(window), int(horizon)
        self.nan = nan
        self.fill = float(fill)                  # the training part's mean, for nan='mean'
        self.scaler = scaler                     # shift/scale [1]

    @classmethod
    def fit(cls, train_part: np.ndarray, window: int, horizon: int, nan: str,
            scale: str) -> "SeriesPreprocessor":
        """Fit on the chronologically first (training) part, raw [T_train]."""
        fill = float(np.nanmean(train_part)) if np.isfinite(train_part).any() else 0.0
        filled = fill_series(train_part, nan, fill)
        return cls(window, horizon, nan, fill, Affine.fit(filled.reshape(-1, 1), scale))

    def scale_values(self, raw: np.ndarray) -> torch.Tensor:
        """Raw values (any shape) -> filled and scaled float32 of the same shape."""
        filled = fill_series(np.asarray(raw, dtype=np.float64).ravel(), self.nan, self.fill)
        t = torch.from_numpy(filled.astype(np.float32)).reshape(-1, 1)   # [T, 1]
        return self.scaler.apply(t).reshape(np.shape(raw))

    def windows(self, raw: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """All (x [N, window, 1], y [N, horizon]) windows of one contiguous raw stretch."""
        s = self.scale_values(raw)                                       # [T]
        n = len(s) - self.window - self.horizon + 1
        if n < 1:
            return torch.zeros(0, self.window, 1), torch.zeros(0, self.horizon)
        span = s.unfold(0, self.window + self.horizon, 1)                # [N, window + horizon]
        return span[:, : self.window, None].contiguous(), span[:, self.window:].contiguous()

    def transform(self, raw: Any) -> torch.Tensor:
        a = as_array(raw, "series values")
        if a.ndim == 1:
            if len(a) < self.window:
                raise DataError(f"need at least {self.window} recent values, got {len(a)}")
            a = a[-self.window:][None]
        elif a.ndim == 3 and a.shape[-1] == 1:
            a = a[..., 0]
        if a.ndim != 2 or a.shape[1] != self.window:
            raise DataError(f"expected {self.window} recent values (or [N, {self.window}] windows); "
                            f"got shape {tuple(a.shape)}")
        return self.scale_values(a)[..., None]                          # [N, window, 1]

    def inverse_targets(self, y_scaled: torch.Tensor) -> torch.Tensor:
        """Scaled forecasts (any shape) -> series units."""
        return y_scaled * self.scaler.scale + self.scaler.shift

    def state(self) -> tuple[dict, dict[str, torch.Tensor]]:
        meta = {"kind": self.kind, "window": self.window, "horizon": self.horizon,
                "nan": self.nan, "fill": self.fill}
        return meta, {k: v.clone() for k, v in self.scaler.tensors("y").items()}

    @classmethod
    def from_state(cls, meta: dict, tensors: dict[str, torch.Tensor]) -> "SeriesPreprocessor":
        return cls(meta["window"], meta["horizon"], meta["nan"], meta["fill"],
                   Affine.from_tensors(tensors, "y"))
