"""Missing values: find them, apply ``spec.nan``, and say what was done in one line.

Tables: 'drop' removes rows before splitting; 'mean' fills with training-split means (done by
the fitted preprocessor, so predict time does the same); 'zero' fills with 0; 'interpolate' is
for series only. Series: 'drop' and 'interpolate' both interpolate linearly (dropping points would
break the time steps); 'mean' uses the training part's mean. 'error' refuses missing values.
"""

from __future__ import annotations

import numpy as np

from ...errors import DataError
from .raw import RawData

NO_MISSING = "no missing values"


def table_missing(raw: RawData) -> np.ndarray:
    """bool [N, F_numeric]: where numeric features are missing (text columns never are)."""
    if raw.frame:
        numeric = raw.x.select_dtypes(include="number")
        return numeric.isna().to_numpy()
    return np.isnan(np.asarray(raw.x, dtype=np.float64))


def _missing_columns(raw: RawData, mask: np.ndarray) -> list[str]:
    names = list(raw.x.select_dtypes(include="number").columns) if raw.frame else raw.columns
    return [str(names[j]) for j in np.flatnonzero(mask.any(axis=0))]


def refuse(count: int, columns: list[str]) -> DataError:
    where = f" in columns {', '.join(columns)}" if columns else ""
    return DataError(f"input has {count} missing values{where}; set nan='drop' or 'mean'")


def clean_table(raw: RawData, policy: str) -> tuple[RawData, str]:
    """Apply row-level policies before the split; return the data and the report line."""
    mask = table_missing(raw)
    count, total = int(mask.sum()), int(mask.size)
    lost_target = (f"; {raw.missing_targets} rows without a target dropped"
                   if raw.missing_targets else "")
    if count == 0:
        return raw, NO_MISSING + lost_target
    columns = _missing_columns(raw, mask)
    if policy == "error":
        raise refuse(count, columns)
    if policy == "interpolate":
        raise DataError("nan='interpolate' is for series; use 'drop', 'mean' or 'zero' for tables")
    head = f"{count} of {total} values missing in {', '.join(columns)}; "
    if policy == "drop":
        bad = mask.any(axis=1)
        if bad.all():
            raise DataError("every row has a missing value; nan='drop' would leave no data")
        raw = raw.subset(np.flatnonzero(~bad))
        return raw, head + f"dropped {int(bad.sum())} rows" + lost_target
    action = "filled with training-split means" if policy == "mean" else "filled with 0"
    return raw, head + action + lost_target


def fill_series(x: np.ndarray, policy: str, mean: float | None = None) -> np.ndarray:
    """float [T] without NaN, per policy ('mean' needs the training part's ``mean``)."""
    missing = np.isnan(x)
    if not missing.any():
        return x
    if missing.all():
        raise DataError("the series has no values (all missing)")
    if policy == "error":
        raise refuse(int(missing.sum()), [])
    if policy == "zero":
        return np.where(missing, 0.0, x)
    if policy == "mean":
        return np.where(missing, np.nanmean(x) if mean is None else mean, x)
    t = np.arange(len(x))
    return np.interp(t, t[~missing], x[~missing])          # ends take the nearest value


def series_report(x: np.ndarray, name: str, policy: str) -> str:
    count = int(np.isnan(x).sum())
    if count == 0:
        return NO_MISSING
    if policy == "error":
        raise refuse(count, [name])
    action = {"zero": "filled with 0", "mean": "filled with the training part's mean"}.get(
        policy, "interpolated")
    return f"{count} of {len(x)} values missing in {name}; {action}"
