"""Tables: one-hot text columns, impute per the NaN policy, scale features; scale regression y.

Everything is fitted on the training split: one-hot categories, imputation means, feature
scaling and the regression target's scaling (``inverse_targets`` maps predictions back).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ...errors import DataError, unknown_name
from .base import Affine, BasePreprocessor, as_array


class TabularPreprocessor(BasePreprocessor):
    """Raw rows ([F], [N, F], lists, or a DataFrame with the training columns) -> float32 [N, F']."""

    kind = "tabular"

    def __init__(self, columns: list[str], categories: dict[str, list[str]], nan: str,
                 impute: torch.Tensor, x_scaler: Affine, task: str, y_scaler: Affine | None):
        self.columns = list(columns)            # raw input columns, in order
        self.categories = dict(categories)      # text column -> its training categories
        self.nan = nan
        self.impute = impute.to(torch.float32)  # [F'] training means (or zeros)
        self.x_scaler = x_scaler
        self.task = task
        self.y_scaler = y_scaler

    @classmethod
    def fit(cls, train_x: Any, train_y: np.ndarray, columns: list[str], task: str, nan: str,
            scale: str) -> "TabularPreprocessor":
        categories = _fit_categories(train_x, columns)
        placeholder = Affine(torch.zeros(0), torch.ones(0))
        pre = cls(columns, categories, nan, torch.zeros(0), placeholder, task, None)
        x = pre.encode(train_x)                                    # [N, F'] with NaN
        impute = np.nan_to_num(np.nanmean(x, axis=0)) if nan == "mean" and len(x) else np.zeros(x.shape[1])
        pre.impute = torch.from_numpy(impute).to(torch.float32)
        pre.x_scaler = Affine.fit(pre._impute(torch.from_numpy(x).float()).numpy(), scale)
        if task == "regression":
            pre.y_scaler = Affine.fit(np.asarray(train_y, dtype=np.float64).reshape(-1, 1), scale)
        return pre

    @property
    def features(self) -> list[str]:
        """Model input names: numeric columns, then one per (text column, category)."""
        return ([c for c in self.columns if c not in self.categories]
                + [f"{c}={v}" for c in self.columns if c in self.categories for v in self.categories[c]])

    def encode(self, raw: Any) -> np.ndarray:
        """Raw rows -> float64 [N, F'] (NaN kept; one-hot for text columns)."""
        if hasattr(raw, "columns") and hasattr(raw, "iloc"):
            return self._encode_frame(raw)
        if self.categories:   # positional rows with text columns: give them their names
            import pandas as pd

            rows = np.asarray(raw, dtype=object)
            rows = rows[None] if rows.ndim == 1 else rows
            self._check_width(rows)
            return self._encode_frame(pd.DataFrame(rows, columns=self.columns))
        a = as_array(raw, "table rows").astype(np.float64)
        a = a[None] if a.ndim == 1 else a
        self._check_width(a)
        return a

    def _check_width(self, a: np.ndarray) -> None:
        if a.ndim != 2 or a.shape[1] != len(self.columns):
            got = a.shape[1] if a.ndim == 2 else f"shape {a.shape}"
            raise DataError(f"expected {len(self.columns)} features per row; got {got}")

    def _encode_frame(self, df: Any) -> np.ndarray:
        missing = [c for c in self.columns if c not in df.columns]
        if missing:
            raise unknown_name("feature column", missing[0], [str(c) for c in df.columns])
        numeric = [c for c in self.columns if c not in self.categories]
        parts = [_numeric(df[numeric], numeric)] if numeric else []
        for col, cats in self.categories.items():
            values = df[col].astype(str).to_numpy()
            parts.append((values[:, None] == np.asarray(cats)[None, :]).astype(np.float64))
        return np.concatenate(parts, axis=1) if parts else np.zeros((len(df), 0))

    def _impute(self, x: torch.Tensor) -> torch.Tensor:
        missing = torch.isnan(x)
        if not missing.any():
            return x
        if self.nan not in ("mean", "zero"):
            cols = [self.features[j] for j in torch.nonzero(missing.any(0)).flatten().tolist()]
            raise DataError(f"input has {int(missing.sum())} missing values in columns "
                            f"{', '.join(cols)}; this model was trained with nan='{self.nan}', so "
                            "pass complete rows (or train with nan='mean')")
        return torch.where(missing, self.impute.expand_as(x), x)

    def transform(self, raw: Any) -> torch.Tensor:
        x = torch.from_numpy(self.encode(raw)).to(torch.float32)    # [N, F']
        return self.x_scaler.apply(self._impute(x))

    def transform_targets(self, y: np.ndarray) -> torch.Tensor:
        """int64 [N] class indices, or float32 [N, 1] scaled regression targets."""
        if self.task == "classification":
            return torch.as_tensor(np.asarray(y), dtype=torch.int64)
        y = torch.as_tensor(np.asarray(y, dtype=np.float64).reshape(-1, 1), dtype=torch.float32)
        return self.y_scaler.apply(y) if self.y_scaler else y

    def inverse_targets(self, y_scaled: torch.Tensor) -> torch.Tensor:
        """Scaled regression outputs [N, 1] -> target units; identity for classification."""
        return self.y_scaler.invert(y_scaled) if self.y_scaler else y_scaled

    def state(self) -> tuple[dict, dict[str, torch.Tensor]]:
        meta = {"kind": self.kind, "columns": self.columns, "categories": self.categories,
                "nan": self.nan, "task": self.task, "features": self.features}
        tensors = {"impute": self.impute.clone(), **self.x_scaler.tensors("x")}
        if self.y_scaler:
            tensors.update(self.y_scaler.tensors("y"))
        return meta, {k: v.clone() for k, v in tensors.items()}

    @classmethod
    def from_state(cls, meta: dict, tensors: dict[str, torch.Tensor]) -> "TabularPreprocessor":
        y_scaler = Affine.from_tensors(tensors, "y") if "y_shift" in tensors else None
        return cls(meta["columns"], meta["categories"], meta["nan"], tensors["impute"],
                   Affine.from_tensors(tensors, "x"), meta["task"], y_scaler)


def _fit_categories(train_x: Any, columns: list[str]) -> dict[str, list[str]]:
    """Text columns of a DataFrame and their training-split categories (sorted)."""
    if not (hasattr(train_x, "columns") and hasattr(train_x, "dtypes")):
        return {}
    import pandas as pd

    return {c: sorted(train_x[c].astype(str).unique().tolist()) for c in columns
            if not (pd.api.types.is_numeric_dtype(train_x[c]) or pd.api.types.is_bool_dtype(train_x[c]))}


def _numeric(df: Any, names: list[str]) -> np.ndarray:
    try:
        return df.to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        bad = [c for c in names if not _is_number_column(df[c])]
        raise DataError(f"column {bad[0] if bad else names[0]!r} must be numeric like in training") from None


def _is_number_column(col: Any) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(col)) or pd.to_numeric(col, errors="coerce").notna().all()
