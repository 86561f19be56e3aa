"""Limiting and splitting: stratified for classes, shuffled for regression, chronological for series.

Splits are index arrays so every later step (cleaning, fitting, transforming) sees exactly the
same rows, and fitting can be restricted to the training indices.
"""

from __future__ import annotations

import numpy as np

from ...errors import DataError
from ...specs import DataSpec
from .raw import RawData


def apply_limit(raw: RawData, spec: DataSpec) -> RawData:
    """Keep ``spec.limit`` samples: the first ones for series, a seeded shuffle's first otherwise
    (so a limit of a sorted dataset such as mnist still holds every class)."""
    if spec.limit is None or spec.limit >= len(raw):
        return raw
    if raw.modality == "series":
        return raw.subset(np.arange(spec.limit))
    keep = np.random.default_rng(spec.seed).permutation(len(raw))[: spec.limit]
    return raw.subset(np.sort(keep))


def split_indices(y: np.ndarray, task: str, spec: DataSpec) -> tuple[np.ndarray, ...]:
    """(train, val, test) index arrays; classification keeps class proportions where it can."""
    n = len(y)
    n_test, n_val = round(n * spec.test_fraction), round(n * spec.val_fraction)
    if n - n_test - n_val < 1:
        raise DataError(f"only {n} samples: too few to split into train/val/test")
    idx = np.arange(n)
    stratify = task == "classification"
    rest, test = _take(idx, y, n_test, stratify, spec.seed)
    train, val = _take(rest, y[rest], n_val, stratify, spec.seed)
    return train, val, test


def _take(idx: np.ndarray, y: np.ndarray, k: int, stratify: bool, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ``k`` indices off ``idx``; stratified unless a class is too rare for it."""
    from sklearn.model_selection import train_test_split

    if k == 0:
        return np.random.default_rng(seed).permutation(idx), idx[:0]
    if stratify:
        try:
            return tuple(train_test_split(idx, test_size=k, stratify=y, random_state=seed))
        except ValueError:   # a class with one member, or fewer test slots than classes
            pass
    return tuple(train_test_split(idx, test_size=k, random_state=seed))


def series_bounds(length: int, spec: DataSpec) -> tuple[int, int]:
    """Time points (a, b): train is [0, a), val [a, b), test [b, T); each later part's windows
    start ``window`` steps earlier, so every target lies inside its own part (no leakage)."""
    n_test, n_val = round(length * spec.test_fraction), round(length * spec.val_fraction)
    a, b = length - n_val - n_test, length - n_test
    need = spec.window + spec.horizon
    if a < need or (n_val and n_val < spec.horizon) or (n_test and n_test < spec.horizon):
        raise DataError(f"series of {length} values is too short for window={spec.window} and "
                        f"horizon={spec.horizon} with these split fractions")
    return a, b
