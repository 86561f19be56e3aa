"""The data step on the built-in datasets: shapes, splits, train-only statistics, round trips."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nbaimaas.engine.data import DATASETS, describe, list_datasets, load_preprocessor, prepare
from nbaimaas.engine.types import MODALITIES, TASKS
from nbaimaas.errors import DataError, UnknownNameError
from nbaimaas.specs import DataSpec

X_DTYPES = {"image": torch.float32, "tabular": torch.float32, "series": torch.float32,
            "text": torch.int64}
LIMITS = {"mnist": 600}   # keep the catalog-wide tests fast


def spec_for(name: str, **kw) -> DataSpec:
    return DataSpec(name, limit=LIMITS.get(name), **kw)


@pytest.mark.parametrize("name", DATASETS.names())
def test_every_builtin_prepares_to_the_contract(name):
    entry = DATASETS.get(name)
    p = prepare(spec_for(name))
    info = p.info
    assert info.modality == entry.modality in MODALITIES and info.task == entry.task in TASKS
    assert info.input_shape == list(entry.input_shape)
    assert info.classes == entry.classes
    for split in (p.train, p.val, p.test):
        assert list(split.x.shape[1:]) == info.input_shape
        assert split.x.dtype == X_DTYPES[info.modality] and len(split.y) == len(split.x)
        if info.task == "classification":
            assert split.y.dtype == torch.int64 and split.y.ndim == 1
            assert int(split.y.max()) < info.n_outputs
        else:
            assert split.y.dtype == torch.float32 and split.y.shape[1] == info.n_outputs
        if info.modality != "text":
            assert torch.isfinite(split.x).all() and torch.isfinite(split.y.float()).all()
    assert info.counts == {"train": len(p.train), "val": len(p.val), "test": len(p.test)}
    assert info.nan_report
    assert json.loads(json.dumps(info.to_dict())) == info.to_dict()
    if entry.samples and name not in LIMITS and info.modality != "series":
        assert sum(info.counts.values()) == entry.samples


@pytest.mark.parametrize("name", DATASETS.names())
def test_state_round_trip_is_exact(name):
    p = prepare(spec_for(name))
    meta, tensors = p.preprocessor.state()
    meta = json.loads(json.dumps(meta))
    assert all(t.dtype == torch.float32 for t in tensors.values())
    again = load_preprocessor(meta, {k: v.clone() for k, v in tensors.items()})
    raw = p.raw_test
    assert torch.equal(again.transform(raw), p.preprocessor.transform(raw))
    y = p.test.y[:5].float()
    assert torch.equal(again.inverse_targets(y), p.preprocessor.inverse_targets(y))


@pytest.mark.parametrize("name", [n for n in DATASETS.names() if DATASETS.get(n).modality != "series"])
def test_transform_of_raw_test_equals_prepared_test(name):
    p = prepare(spec_for(name))
    assert torch.equal(p.preprocessor.transform(p.raw_test), p.test.x)


def _rows(raw, a: int, b: int):
    return raw.iloc[a:b] if hasattr(raw, "iloc") else raw[a:b]


@pytest.mark.parametrize("name", DATASETS.names())
def test_transform_many_equals_one_transform_each_and_fails_per_input(name):
    """The service preprocesses a batch of requests in one call; each must get exactly what
    transform alone gives it, and a bad one its own error without spoiling the rest."""
    prepared = prepare(spec_for(name))
    pre, raw = prepared.preprocessor, prepared.raw_test
    w = getattr(pre, "window", 0)        # a series input is its last `window` values or more
    parts = [_rows(raw, 0, w + 3), object(), _rows(raw, 3, w + 4), _rows(raw, 4, w + 9)]
    out = pre.transform_many(parts)
    assert len(out) == 4 and isinstance(out[1], Exception)
    for i in (0, 2, 3):
        assert torch.equal(out[i], pre.transform(parts[i])), i


def test_list_datasets_matches_the_loaded_data():
    listing = list_datasets()
    assert listing.names() == DATASETS.names()
    assert "digits" in listing._repr_html_()
    for row in listing:
        raw = DATASETS.get(row.name).load()
        assert row.samples == len(raw) and row.classes == raw.classes


def test_unknown_dataset_suggests_a_name():
    with pytest.raises(UnknownNameError, match="did you mean 'digits'"):
        prepare(DataSpec("digitz"))
    with pytest.raises(UnknownNameError, match="did you mean 'mnist'"):
        DATASETS.get("mnits")


def test_stratified_split_keeps_class_proportions():
    p = prepare(DataSpec("breast_cancer"))
    share = [float((s.y == 1).float().mean()) for s in (p.train, p.val, p.test)]
    assert max(share) - min(share) < 0.02
    assert p.info.class_counts == {"malignant": int((p.train.y == 0).sum()),
                                   "benign": int((p.train.y == 1).sum())}


def test_splits_are_disjoint_and_seeded():
    p = prepare(DataSpec("digits"))
    rows = [{tuple(r) for r in s.x.flatten(1).tolist()} for s in (p.train, p.val, p.test)]
    assert len(rows[0] & rows[2]) <= 2 and len(rows[0] & rows[1]) <= 2   # digits has a few twins
    q = prepare(DataSpec("digits"))
    assert torch.equal(p.test.x, q.test.x)
    r = prepare(DataSpec("digits", seed=1))
    assert not torch.equal(p.test.y, r.test.y)


def test_image_statistics_come_from_train_only():
    spec = DataSpec("digits")
    p = prepare(spec)
    assert abs(float(p.train.x.mean())) < 1e-4 and abs(float(p.train.x.std()) - 1) < 1e-3
    raw = DATASETS.get("digits").load().x / 16.0
    train_raw = p.preprocessor.transform(np.zeros((1, 8, 8)))  # the value zero maps to -mean/std
    mean = float(p.preprocessor.mean[0])
    assert float(train_raw[0, 0, 0, 0]) == pytest.approx(-mean / float(p.preprocessor.std[0]))
    assert mean != pytest.approx(float(raw.mean()), abs=1e-6)  # not the all-data mean
    manual = (p.raw_test[:, None] / 16.0 - mean) / float(p.preprocessor.std[0])
    assert torch.allclose(p.test.x, torch.as_tensor(manual, dtype=torch.float32), atol=1e-5)


def test_tabular_standardised_with_train_stats():
    p = prepare(DataSpec("wine"))
    assert torch.allclose(p.train.x.mean(0), torch.zeros(13), atol=1e-4)
    assert torch.allclose(p.train.x.std(0, unbiased=False), torch.ones(13), atol=1e-3)
    raw = DATASETS.get("wine").load()
    train_rows = {tuple(r) for r in p.preprocessor.x_scaler.invert(p.train.x).tolist()}
    assert len(train_rows) == len(p.train)
    mean = p.preprocessor.x_scaler.shift
    manual = (torch.as_tensor(p.raw_test, dtype=torch.float32) - mean) / p.preprocessor.x_scaler.scale
    assert torch.allclose(p.test.x, manual, atol=1e-5)
    assert not torch.allclose(mean, torch.as_tensor(raw.x.mean(0), dtype=torch.float32), atol=1e-3)


def test_minmax_and_none_scaling():
    p = prepare(DataSpec("iris", scale="minmax"))
    assert float(p.train.x.min()) == pytest.approx(0) and float(p.train.x.max()) == pytest.approx(1)
    q = prepare(DataSpec("iris", scale="none"))
    assert torch.equal(q.test.x, torch.as_tensor(q.raw_test, dtype=torch.float32))
    img = prepare(DataSpec("digits", scale="none"))
    assert float(img.train.x.min()) == 0 and float(img.train.x.max()) == 1


def test_regression_targets_scaled_and_invertible():
    p = prepare(DataSpec("diabetes"))
    assert abs(float(p.train.y.mean())) < 1e-4 and p.train.y.shape == (len(p.train), 1)
    raw_y = DATASETS.get("diabetes").load().y
    back = p.preprocessor.inverse_targets(p.train.y)
    assert set(np.round(back.numpy().ravel(), 2)) <= set(np.round(raw_y, 2))


def test_image_resize_and_shape_errors():
    p = prepare(DataSpec("digits", image_size=16))
    assert p.info.input_shape == [1, 16, 16] and p.train.x.shape[1:] == (1, 16, 16)
    assert p.preprocessor.transform(np.zeros((3, 5, 5))).shape == (3, 1, 16, 16)
    plain = prepare(DataSpec("digits")).preprocessor
    assert plain.transform(np.zeros((8, 8))).shape == (1, 1, 8, 8)
    assert plain.transform(torch.zeros(2, 1, 8, 8)).shape == (2, 1, 8, 8)
    with pytest.raises(DataError, match=r"expected images of shape \(8, 8\) \(or a batch \[N, 8, 8\]\); got \(5, 5\)"):
        plain.transform(np.zeros((5, 5)))
    with pytest.raises(DataError, match="must be numeric"):
        plain.transform([["a"] * 8] * 8)
    # several requests of different raw sizes in one call: each resized as on its own
    rng = np.random.default_rng(0)
    mixed = [rng.uniform(0, 16, (2, 5, 5)), rng.uniform(0, 16, (8, 8)), rng.uniform(0, 16, (1, 5, 5))]
    for got, raw in zip(p.preprocessor.transform_many(mixed), mixed):
        assert torch.allclose(got, p.preprocessor.transform(raw), atol=1e-6)


def test_limit_keeps_classes_and_counts():
    p = prepare(DataSpec("mnist", limit=300))
    assert sum(p.info.counts.values()) == 300
    assert all(c > 0 for c in p.info.class_counts.values())


def test_co2_nan_report_and_policies():
    p = prepare(DataSpec("co2"))
    assert p.info.nan_report == "59 of 2284 values missing in co2; interpolated"
    z = prepare(DataSpec("co2", nan="zero"))
    assert z.info.nan_report.endswith("filled with 0")
    with pytest.raises(DataError, match="input has 59 missing values in columns co2; set nan='drop' or 'mean'"):
        prepare(DataSpec("co2", nan="error"))


def test_series_windows_line_up():
    spec = DataSpec("sunspots", window=10, horizon=3)
    p = prepare(spec)
    x, y = p.train.x[..., 0], p.train.y
    assert x.shape[1:] == (10,) and y.shape[1:] == (3,)
    for i in range(5):
        assert torch.equal(y[i], x[i + 10, :3])          # targets are later windows' inputs
        assert torch.equal(x[i + 1, :-1], x[i, 1:])
    raw = DATASETS.get("sunspots").load().x
    a = len(raw) - 2 * round(len(raw) * 0.15)
    assert np.allclose(p.preprocessor.inverse_targets(y).numpy(), np.lib.stride_tricks
                       .sliding_window_view(raw[10:a], 3)[: len(y)], atol=1e-3)
    assert torch.allclose(p.preprocessor.transform(p.raw_test[:10]), p.test.x[:1])
    shift = p.preprocessor.scaler.shift
    assert float(shift[0]) == pytest.approx(raw[:a].mean(), rel=1e-5)   # train part only


def test_series_chronological_and_transform_errors():
    p = prepare(DataSpec("sunspots"))
    pre = p.preprocessor
    last_train_target = pre.inverse_targets(p.train.y[-1:])
    first_val_input = pre.inverse_targets(p.val.x[0, -1:, 0])
    assert float(last_train_target) == pytest.approx(float(first_val_input), rel=1e-5)
    assert pre.transform(np.arange(100.0)).shape == (1, 24, 1)
    assert pre.transform(np.zeros((4, 24))).shape == (4, 24, 1)
    with pytest.raises(DataError, match="need at least 24 recent values, got 10"):
        pre.transform(np.arange(10.0))


def test_text_vocabulary_from_train_only():
    p = prepare(DataSpec("topics"))
    pre = p.preprocessor
    assert p.info.vocab_size == len(pre.vocab) + 2 and "the" in pre.vocab[:20]
    out = pre.transform(["the zzzqqq", "the"])
    assert out.shape == (2, 48) and out[0, 1] == 1 and out[1, 1] == 0
    assert int(out[0, 0]) == pre.vocab.index("the") + 2
    train_tokens = set(pre.vocab)
    from nbaimaas.engine.data.text import tokenize

    test_only = {t for s in p.raw_test for t in tokenize(s)} - train_tokens
    assert test_only, "some test words never appear in training"
    word = sorted(test_only)[0]
    assert int(pre.transform(word)[0, 0]) == 1
    small = prepare(DataSpec("topics", max_vocab=50, max_len=5))
    assert small.info.vocab_size == 50 and small.train.x.shape[1] == 5
    with pytest.raises(DataError, match="text input must be"):
        pre.transform(3)


def test_topics_is_learnable_beyond_the_majority_class():
    from sklearn.linear_model import LogisticRegression

    p = prepare(DataSpec("topics"))
    v = p.info.vocab_size

    def bag(x):                                            # [N, max_len] ids -> [N, vocab] counts
        out = np.zeros((len(x), v))
        np.add.at(out, (np.repeat(np.arange(len(x)), x.shape[1]), x.numpy().ravel()), 1)
        return out[:, 2:]

    model = LogisticRegression(max_iter=300).fit(bag(p.train.x), p.train.y.numpy())
    acc = model.score(bag(p.test.x), p.test.y.numpy())
    majority = max(p.info.class_counts.values()) / p.info.counts["train"]
    assert acc > majority + 0.25


def test_describe_gives_plain_samples():
    d = describe(DataSpec("digits"))
    assert d["info"]["name"] == "digits" and d["samples"].shape == (8, 8, 8)
    assert d["sample_labels"] == [str(i) for i in DATASETS.get("digits").load().y[:8]]
    rows = describe(DataSpec("iris"))["samples"]
    assert isinstance(rows[0], dict) and len(rows[0]) == 4
    assert isinstance(describe(DataSpec("topics"))["samples"][0], str)
    series = describe(DataSpec("sunspots"))
    assert series["samples"].ndim == 1 and series["sample_labels"] == []


def test_load_preprocessor_rejects_unknown_kind():
    with pytest.raises(DataError, match="unknown preprocessor kind 'audio'"):
        load_preprocessor({"kind": "audio"}, {})

