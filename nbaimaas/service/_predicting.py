"""One batched forward for many predict requests, reusing the engine's own predict.

Each request's raw inputs go through the model's fitted preprocessor (``transform_many``: one
pass where it can, and a bad request fails alone), the tensors are concatenated, and
``engine.predict.predict`` runs once on the whole batch with a pass-through preprocessor; the
Prediction is then cut back per request.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from ..errors import DataError, NbaimaasError

__all__ = ["PredictItem", "predict_batch"]


@dataclass
class PredictItem:
    inputs: Any
    horizon: int | None = None

    @cached_property
    def rows(self) -> int:
        """How many inputs this request holds (the batcher times its passes by rows)."""
        shape = getattr(self.inputs, "shape", None)
        if shape is not None:
            return int(shape[0]) if len(shape) else 1
        try:
            return len(self.inputs)
        except TypeError:
            return 1


class _Ready:
    """A preprocessor whose inputs were already transformed; everything else is the real one's."""

    def __init__(self, inner):
        self._inner = inner

    def transform(self, x):
        return x

    def __getattr__(self, name):
        return getattr(self._inner, name)


def predict_batch(cache, ref: str, items: list[PredictItem]) -> list:
    """One Prediction (or the exception for that request) per item, in order."""
    try:
        # ref is the exact version the route resolved for these requests just now
        servable = cache.loaded(ref) or cache.get(ref)
    except Exception as exc:  # noqa: BLE001 - every request of the batch gets the reason
        return [_as_user_error(exc, ref)] * len(items)
    results: list[Any] = [None] * len(items)
    groups: dict[Any, list[tuple[int, Any]]] = {}
    # one preprocessing pass for the whole batch where the preprocessor can; errors stay per item
    for i, (item, x) in enumerate(zip(items, servable.preprocessor.transform_many([it.inputs for it in items]))):
        if not isinstance(x, Exception) and len(x) == 0:
            x = DataError("nothing to predict: the input is empty")
        if isinstance(x, Exception):
            results[i] = _as_user_error(x, ref)
        else:
            groups.setdefault(item.horizon, []).append((i, x))
    for horizon, members in groups.items():
        _run_group(servable, horizon, members, results, ref)
    return results


def _run_group(servable, horizon, members, results, ref) -> None:
    import torch

    from ..engine.predict import predict

    ready = dataclasses.replace(servable, preprocessor=_Ready(servable.preprocessor))
    if len(members) == 1:           # a lone request: nothing to join or cut
        i, x = members[0]
        results[i] = _safe(lambda: predict(ready, x, 1, horizon), ref)
        return
    try:
        batch = torch.cat([x for _, x in members])
    except RuntimeError:   # shapes differ between requests: run them one by one
        for i, x in members:
            results[i] = _safe(lambda: predict(ready, x, 1, horizon), ref)
        return
    whole = _safe(lambda: predict(ready, batch, 1, horizon), ref)
    start = 0
    for i, x in members:
        results[i] = whole if isinstance(whole, Exception) else _slice(whole, start, start + len(x))
        start += len(x)


def _safe(fn, ref):
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001
        return _as_user_error(exc, ref)


def _slice(pred, a: int, b: int):
    return dataclasses.replace(
        pred,
        labels=None if pred.labels is None else pred.labels[a:b],
        probabilities=None if pred.probabilities is None else pred.probabilities[a:b],
        values=None if pred.values is None else pred.values[a:b])


def _as_user_error(exc: Exception, ref: str) -> Exception:
    if isinstance(exc, NbaimaasError):
        return exc
    # Shapes and dtypes the preprocessor could not use: the caller's inputs, not a server bug.
    return DataError(f"cannot predict with {ref} on these inputs: {type(exc).__name__}: {exc}")
