"""The Python API end to end: the seven steps, the quality bars, and every bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

import nbaimaas as ai
from nbaimaas import errors


def test_catalog_listings():
    names = ai.datasets().names()
    for required in ("digits", "mnist", "iris", "diabetes", "co2", "topics"):
        assert required in names
    archs = ai.architectures().names()
    for required in ("mlp", "lenet", "resnet", "lstm", "gru", "embedding_bag", "bilstm", "transformer", "layers"):
        assert required in archs
    assert "lenet" in ai.architectures(task="classification", modality="image").names()
    assert "<table" in ai.datasets()._repr_html_()


def test_spec_round_trips_through_json():
    spec, _, _ = ai.train_spec(data="co2", model="gru", window=12, horizon=3, init="orthogonal",
                               options={"hidden": 32}, schedule="onecycle", early_stop=3, name="co2-gru")
    again = ai.TrainSpec.from_json(spec.to_json())
    assert again == spec and json.loads(again.to_json()) == json.loads(spec.to_json())
    assert again.data.window == 12 and again.model.options == {"hidden": 32}


@pytest.mark.slow
def test_lenet_on_digits_reaches_95_percent_and_predicts_raw_images():
    r = ai.train(data="digits", model="lenet", epochs=15, lr=2e-3, name="digits-cnn", seed=0)
    assert r.model == "digits-cnn:1"
    ev = ai.evaluate("digits-cnn", split="test")
    assert ev.metrics["test_accuracy"] >= 0.95, ev.metrics
    assert np.asarray(ev.confusion).sum() == ev.samples
    sample = ai.sample("digits", n=20)
    pred = ai.predict("digits-cnn", sample["inputs"], top_k=3)
    assert pred.probabilities.shape == (20, 10)
    np.testing.assert_allclose(pred.probabilities.sum(1), 1.0, rtol=1e-5)
    assert np.mean(np.array(pred.labels) == np.array(sample["labels"])) >= 0.85
    one = ai.predict("digits-cnn", sample["inputs"][0])            # a single raw 8x8 image
    assert one.labels == pred.labels[:1]
    assert [m.ref for m in ai.models()] == ["digits-cnn:1"]


def _naive_mae(data: str, **kw) -> float:
    from nbaimaas.engine.data import prepare

    p = prepare(ai.DataSpec(data, **kw))
    last = p.test.x[:, -1, :1].repeat(1, p.info.n_outputs)   # [N, horizon]: repeat the last value
    inv = p.preprocessor.inverse_targets
    return float((inv(last) - inv(p.test.y)).abs().mean())


@pytest.mark.slow
def test_forecaster_beats_the_naive_last_value_forecast():
    r = ai.train(data="co2", model="lstm", window=24, horizon=1, epochs=15, lr=3e-3, name="co2-lstm")
    ev = ai.evaluate(r.model)
    naive = _naive_mae("co2", window=24, horizon=1)
    assert ev.metrics["test_mae"] < naive, (ev.metrics, naive)
    recent = ai.sample("co2")["inputs"][-24:]
    fc = ai.predict(r.model, recent, horizon=6)
    assert fc.values.shape == (1, 6) and np.isfinite(fc.values).all()


@pytest.mark.slow
def test_text_model_beats_the_majority_class_clearly():
    r = ai.train(data="topics", model="embedding_bag", epochs=20, lr=3e-3, name="topics")
    ev = ai.evaluate(r.model)
    counts = np.asarray(ev.confusion).sum(1)
    majority = counts.max() / counts.sum()
    assert ev.metrics["test_accuracy"] > majority + 0.15, (ev.metrics, majority)
    pred = ai.predict(r.model, ["what is your favourite programming language", "tell me a joke"])
    assert len(pred.labels) == 2 and set(pred.labels) <= set(ev.classes)


def test_regression_predicts_values_in_data_units():
    r = ai.train(data="diabetes", model="mlp", epochs=20, lr=3e-3, name="diab")
    ev = ai.evaluate(r.model)
    assert ev.metrics["test_r2"] > 0.2
    rows = ai.sample("diabetes", n=5)
    pred = ai.predict(r.model, rows["inputs"])
    assert pred.values.shape[0] == 5 and pred.values.min() > 10   # disease progression ~25..346


def test_inline_arrays_and_a_custom_module():
    import torch

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    r = ai.train(data=(X, y), model="mlp", epochs=10, lr=1e-2, name="inline")
    assert r.metrics["val_accuracy"] > 0.85
    assert ai.predict("inline", X[:3]).probabilities.shape == (3, 2)
    module = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    r2 = ai.train(data=(X, y), model=module, epochs=10, lr=1e-2, name="mine")
    assert r2.metrics["val_accuracy"] > 0.85
    assert ai.predict("mine", X[:3]).probabilities.shape == (3, 2)


def test_aliases_versions_and_delete():
    ai.train(data="iris", model="mlp", epochs=2, name="iris")
    ai.train(data="iris", model="mlp", epochs=2, name="iris")
    assert [m.version for m in ai.models("iris")] == [1, 2]
    ai.alias("iris:1", "prod")
    assert ai.model("iris@prod").version == 1
    ai.delete("iris:1")
    assert [m.version for m in ai.models("iris")] == [2]
    with pytest.raises(errors.NotFoundError, match="no version 1"):
        ai.predict("iris:1", np.zeros((1, 4)))


# -- bad input: one clear line each -----------------------------------------------------------

def _one_line(exc_info) -> str:
    text = str(exc_info.value)
    assert "\n" not in text
    return text


def test_unknown_dataset_suggests_a_name():
    with pytest.raises(errors.UnknownNameError) as e:
        ai.train(data="digitz", model="mlp")
    assert "did you mean 'digits'" in _one_line(e)


def test_unknown_architecture_suggests_a_name():
    with pytest.raises(errors.UnknownNameError) as e:
        ai.train(data="digits", model="lenett")
    assert "did you mean 'lenet'" in _one_line(e)


def test_unknown_train_option_suggests_a_name():
    with pytest.raises(errors.UnknownNameError) as e:
        ai.train(data="digits", epoch=3)
    assert "did you mean 'epochs'" in _one_line(e)


def test_model_that_does_not_fit_the_data():
    with pytest.raises(errors.IncompatibleError) as e:
        ai.train(data="iris", model="lenet")
    assert "tabular" in _one_line(e)


def test_bad_values_are_rejected_before_training():
    with pytest.raises(errors.SpecError, match="lr must be a positive number"):
        ai.train(data="digits", lr=-1)
    with pytest.raises(errors.SpecError, match="epochs must be a positive integer"):
        ai.train(data="digits", epochs=0)


def test_mismatched_lengths_and_empty_data():
    X = np.zeros((10, 3), np.float32)
    with pytest.raises(errors.DataError) as e:
        ai.train(data=(X, np.zeros(9)), model="mlp")
    assert "10" in _one_line(e) and "9" in str(e.value)
    with pytest.raises(errors.DataError):
        ai.train(data=(np.zeros((0, 3)), np.zeros(0)), model="mlp")


def test_nan_inputs_with_nan_error_policy():
    X = np.random.default_rng(0).normal(size=(50, 3))
    X[3, 1] = np.nan
    with pytest.raises(errors.DataError) as e:
        ai.train(data=(X, np.arange(50) % 2), model="mlp", nan="error")
    assert "missing" in _one_line(e)


def test_predict_rejects_wrong_shapes_and_unknown_models():
    ai.train(data="iris", model="mlp", epochs=1, name="iris")
    with pytest.raises(errors.DataError) as e:
        ai.predict("iris", np.zeros((2, 5)))
    assert "4" in _one_line(e)
    with pytest.raises(errors.NotFoundError) as e:
        ai.predict("irs", np.zeros((1, 4)))
    assert "did you mean 'iris'" in _one_line(e)
    with pytest.raises(errors.NotFoundError):
        ai.evaluate("iris:9")
