"""The data step: load -> limit -> clean -> split -> fit on train only -> tensors.

One builder per modality; each fits its preprocessor on the training indices and produces every
split through the same ``transform`` that predict will use, so prepared test inputs and
``transform(raw_test)`` agree exactly.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import torch

from ...errors import DataError
from ...results import DatasetInfo, Listing
from ...specs import DataSpec
from ..types import DataInfo, Prepared, Split
from .catalog import DATASETS
from .clean import NO_MISSING, clean_table, series_report
from .images import ImagePreprocessor
from .raw import RawData
from .series import SeriesPreprocessor
from .sources import load
from .split import apply_limit, series_bounds, split_indices
from .tables import TabularPreprocessor
from .text import TextPreprocessor

PREPROCESSORS = {cls.kind: cls for cls in
                 (ImagePreprocessor, TabularPreprocessor, TextPreprocessor, SeriesPreprocessor)}
N_SAMPLES = 8   # raw examples shown by describe()


def prepare(spec: DataSpec, inline: Any = None) -> Prepared:
    """Prepared tensors per the layouts in ``engine/types.py``, plus the fitted preprocessor."""
    raw = apply_limit(load(spec, inline), spec)
    builder = {"image": _images, "tabular": _table, "text": _text, "series": _series}[raw.modality]
    return builder(raw, spec)


def load_preprocessor(meta: dict, tensors: dict[str, torch.Tensor]) -> Any:
    """Rebuild a fitted preprocessor from ``preprocessor.state()`` (exact round trip)."""
    kind = meta.get("kind") if isinstance(meta, dict) else None
    if kind not in PREPROCESSORS:
        raise DataError(f"unknown preprocessor kind {kind!r}; known: {', '.join(sorted(PREPROCESSORS))}")
    return PREPROCESSORS[kind].from_state(meta, tensors)


def _info(raw: RawData, spec: DataSpec, input_shape: list, n_outputs: int, counts: dict,
          train_y: np.ndarray | None, nan_report: str, vocab_size: int = 0) -> DataInfo:
    class_counts = {}
    if raw.task == "classification" and train_y is not None:
        tally = Counter(np.asarray(train_y).tolist())
        class_counts = {name: int(tally.get(i, 0)) for i, name in enumerate(raw.classes)}
    return DataInfo(name=raw.name, modality=raw.modality, task=raw.task,
                    input_shape=[int(s) for s in input_shape], n_outputs=int(n_outputs),
                    classes=list(raw.classes), vocab_size=vocab_size, counts=counts,
                    class_counts=class_counts, nan_report=nan_report)


def _counts(*splits: Split) -> dict:
    return dict(zip(("train", "val", "test"), (len(s) for s in splits)))


def _images(raw: RawData, spec: DataSpec) -> Prepared:
    images = np.asarray(raw.x)                                     # [N, C, H, W] raw units
    if np.issubdtype(images.dtype, np.floating) and np.isnan(images).any():
        raise DataError(f"images contain {int(np.isnan(images).sum())} missing pixel values; "
                        "clean them before training")
    parts = split_indices(raw.y, raw.task, spec)
    pre = ImagePreprocessor.fit(images[parts[0]], raw.raw_max, spec.scale, spec.image_size)
    train, val, test = (Split(pre.transform(images[i]), torch.from_numpy(raw.y[i].copy()))
                        for i in parts)
    raw_test = images[parts[2]]
    raw_test = raw_test[:, 0] if raw_test.shape[1] == 1 else raw_test   # [N, H, W] when gray
    shape = list(train.x.shape[1:]) if len(train) else [images.shape[1], *(pre.resize or pre.raw_size)]
    info = _info(raw, spec, shape, len(raw.classes), _counts(train, val, test), raw.y[parts[0]],
                 NO_MISSING)
    return Prepared(info, train, val, test, pre, raw_test=raw_test)


def _table(raw: RawData, spec: DataSpec) -> Prepared:
    raw, report = clean_table(raw, spec.nan)
    parts = split_indices(raw.y, raw.task, spec)
    train_raw = raw.subset(parts[0])
    pre = TabularPreprocessor.fit(train_raw.x, train_raw.y, raw.columns, raw.task, spec.nan, spec.scale)
    subsets = [train_raw] + [raw.subset(i) for i in parts[1:]]
    train, val, test = (Split(pre.transform(s.x), pre.transform_targets(s.y)) for s in subsets)
    n_outputs = len(raw.classes) if raw.task == "classification" else 1
    info = _info(raw, spec, [len(pre.features)], n_outputs, _counts(train, val, test),
                 train_raw.y, report)
    return Prepared(info, train, val, test, pre, raw_test=subsets[2].x)


def _text(raw: RawData, spec: DataSpec) -> Prepared:
    parts = split_indices(raw.y, raw.task, spec)
    texts = [[raw.x[j] for j in i] for i in parts]
    pre = TextPreprocessor.fit(texts[0], spec.max_vocab, spec.max_len)
    train, val, test = (Split(pre.transform(t), torch.from_numpy(raw.y[i].copy()))
                        for t, i in zip(texts, parts))
    info = _info(raw, spec, [spec.max_len], len(raw.classes), _counts(train, val, test),
                 raw.y[parts[0]], NO_MISSING, vocab_size=pre.vocab_size)
    return Prepared(info, train, val, test, pre, raw_test=texts[2])


def _series(raw: RawData, spec: DataSpec) -> Prepared:
    values = np.asarray(raw.x, dtype=np.float64)                  # [T] raw, may hold NaN
    report = series_report(values, raw.name, spec.nan)
    a, b = series_bounds(len(values), spec)
    pre = SeriesPreprocessor.fit(values[:a], spec.window, spec.horizon, spec.nan, spec.scale)
    w = spec.window
    stretches = (values[:a], values[a - w:b], values[b - w:])
    train, val, test = (Split(*pre.windows(s)) for s in stretches)
    info = _info(raw, spec, [w, 1], spec.horizon, _counts(train, val, test), None, report)
    return Prepared(info, train, val, test, pre, raw_test=values[b - w:].copy())


def list_datasets() -> Listing:
    """The built-in catalog (facts registered with each loader, so nothing is loaded)."""
    rows = [DatasetInfo(name=e.name, modality=e.modality, task=e.task, samples=e.samples or 0,
                        input_shape=list(e.input_shape or []), classes=list(e.classes),
                        description=e.description)
            for e in (DATASETS.get(n) for n in DATASETS.names())]
    return Listing(rows, caption="built-in datasets")


def describe(spec: DataSpec, inline: Any = None) -> dict:
    """A notebook summary: the prepared DataInfo plus a few raw examples and their labels."""
    prepared = prepare(spec, inline)
    raw = apply_limit(load(spec, inline), spec)
    k = min(N_SAMPLES, len(raw))
    return {"info": prepared.info.to_dict(), "samples": _raw_samples(raw, k),
            "sample_labels": _sample_labels(raw, k)}


def _raw_samples(raw: RawData, k: int) -> Any:
    if raw.modality == "image":
        first = np.asarray(raw.x[:k])
        return first[:, 0].copy() if first.shape[1] == 1 else first.copy()   # [k, H, W] or [k, C, H, W]
    if raw.modality == "text":
        return [str(t) for t in raw.x[:k]]
    if raw.modality == "series":
        return np.asarray(raw.x, dtype=np.float64).copy()
    if raw.frame:
        return raw.x.iloc[:k].to_dict(orient="records")
    return [dict(zip(raw.columns, map(float, row))) for row in np.asarray(raw.x[:k])]


def _sample_labels(raw: RawData, k: int) -> list:
    if raw.y is None:
        return []
    if raw.task == "classification":
        return [raw.classes[int(i)] for i in raw.y[:k]]
    return [float(v) for v in raw.y[:k]]
