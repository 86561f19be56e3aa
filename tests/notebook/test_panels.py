"""The widget panels, driven from Python: set controls, click buttons, wait, read widget values."""

from __future__ import annotations

import io
import time
from datetime import datetime, timezone

import numpy as np
import pytest

import nbaimaas as ai

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def home(tmp_path):
    ai.connect("local", home=tmp_path / "home")
    return tmp_path / "home"


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("panels-home")
    ai.connect("local", home=home)
    ai.train(data="digits", model="mlp", limit=300, epochs=2, name="pm")
    return home


@pytest.fixture
def trained(trained_home):
    ai.connect("local", home=trained_home)
    return "pm"


def classes_of(widget) -> set:
    return set(widget._dom_classes)


def quick_panel(**values):
    panel = ai.TrainPanel()
    panel.limit.value = 300
    panel.epochs.value = 2
    for key, value in values.items():
        getattr(panel, key).value = value
    return panel


# -- TrainPanel --------------------------------------------------------------------------------
def test_train_panel_trains_in_the_background(home):
    panel = quick_panel(name="tp", optimizer="sgd", lr=0.05)
    assert "nbaimaas-train-button" in classes_of(panel.train_button)
    panel.train_button.click()
    result = panel.wait(120)
    assert panel.last_error is None and result.status == "completed"
    assert result.model == "tp:1" and result.spec["optimizer"] == "sgd"
    assert panel.progress.value == panel.progress.max > 0
    assert bytes(panel.plot.value).startswith(PNG)
    assert "val_accuracy" in panel.metrics.value and "completed" in panel.metrics.value
    assert not panel.train_button.disabled and panel.stop_button.disabled


def test_train_panel_stop_mid_run(home):
    panel = quick_panel(epochs=1000)
    panel.train_button.click()
    assert panel.stop_button.disabled is False
    deadline = time.monotonic() + 60
    while (panel.run is None or not panel.view.state.history) and time.monotonic() < deadline:
        time.sleep(0.05)                # let one epoch end, so there is something to keep
    panel.stop_button.click()
    result = panel.wait(60)
    assert result.status == "stopped" and 1 <= result.epochs_run < 1000
    assert panel.progress.bar_style == "warning" and "stopped" in panel.metrics.value


def test_architectures_follow_the_dataset(home):
    panel = ai.TrainPanel()
    panel.dataset.value = "topics"
    assert "embedding_bag" in panel.arch.options and "lenet" not in panel.arch.options
    panel.dataset.value = "digits"
    assert "lenet" in panel.arch.options and panel.arch.value in panel.arch.options


def test_train_panel_shows_errors_inside(home):
    panel = quick_panel(name="bad name!")
    panel.train_button.click()
    assert panel.wait(5) is None
    assert "nbaimaas-error" in classes_of(panel.error)
    assert panel.error.value and panel.last_error is not None
    assert not panel.train_button.disabled


def test_every_control_has_a_css_class(home):
    panel = ai.TrainPanel()
    for name, css in [("dataset", "dataset"), ("arch", "arch"), ("optimizer", "optimizer"),
                      ("epochs", "epochs"), ("lr", "lr"), ("stop_button", "stop-button"),
                      ("metrics", "metrics"), ("error", "error"), ("init", "init"),
                      ("batch_size", "batch-size"), ("name", "name")]:
        assert f"nbaimaas-{css}" in classes_of(getattr(panel, name)), name


# -- PredictPanel ------------------------------------------------------------------------------
def test_predict_panel_matches_api_predict(trained):
    panel = ai.PredictPanel("pm")
    assert panel.model.value == "pm:1" and panel.sample.max > 0
    panel.sample.value = 5
    pred = panel.predict_current()
    sample = ai.sample("digits", n=32, limit=300)
    expected = ai.predict("pm", sample["inputs"][5:6])
    assert pred.labels == expected.labels
    assert expected.labels[0] in panel.top_label.value
    assert bytes(panel.proba_plot.value).startswith(PNG)
    assert "nbaimaas-proba-plot" in classes_of(panel.proba_plot)
    assert "nbaimaas-top-label" in classes_of(panel.top_label)
    assert panel.last_error is None


def test_predict_panel_uploaded_image(trained):
    from PIL import Image

    digit = ai.sample("digits", n=1, limit=300)["inputs"][0]             # 8x8, 0..16
    big = Image.fromarray((255 - digit / 16 * 255).astype("uint8")).resize((32, 32))
    buf = io.BytesIO()
    big.save(buf, format="PNG")
    content = buf.getvalue()
    panel = ai.PredictPanel()
    panel.upload.value = ({"name": "digit.png", "type": "image/png", "size": len(content),
                           "content": memoryview(content),
                           "last_modified": datetime.now(timezone.utc)},)
    assert panel.last_error is None
    assert panel.prediction is not None and panel.prediction.labels[0] in panel.top_label.value
    assert panel._uploaded.shape == (1, 8, 8) and panel._uploaded.max() <= 16


def test_predict_panel_without_models_shows_nothing_broken(home):
    panel = ai.PredictPanel()
    assert panel.model.options == () and panel.last_error is None


# -- ModelsPanel -------------------------------------------------------------------------------
def test_models_panel_alias_and_confirmed_delete(home):
    ai.train(data="digits", model="mlp", limit=300, epochs=1, name="mp")
    ai.train(data="digits", model="mlp", limit=300, epochs=1, name="mp")
    panel = ai.ModelsPanel()
    assert panel.version.options == ("mp:1", "mp:2") or set(panel.version.options) == {"mp:1", "mp:2"}
    assert "mp" in panel.table.value and "nbaimaas-models-table" in classes_of(panel.table)
    panel.version.value = "mp:1"
    panel.alias.value = "prod"
    panel.alias_button.click()
    assert ai.model("mp@prod").ref == "mp:1" and "prod" in panel.table.value
    panel.delete_button.click()
    assert panel.delete_button.description == "Confirm delete"
    assert [v.ref for v in ai.models()] == ["mp:1", "mp:2"] or len(ai.models()) == 2   # not yet
    panel.delete_button.click()
    assert [v.ref for v in ai.models()] == ["mp:2"]
    assert panel.version.options == ("mp:2",) and "deleted mp:1" in panel.status.value
    assert panel.delete_button.description == "Delete"


def test_models_panel_changing_version_cancels_confirmation(home):
    ai.train(data="digits", model="mlp", limit=300, epochs=1, name="mq")
    ai.train(data="digits", model="mlp", limit=300, epochs=1, name="mq")
    panel = ai.ModelsPanel()
    panel.version.value = "mq:1"
    panel.delete_button.click()
    panel.version.value = "mq:2"
    panel.delete_button.click()         # a first click again: asks, does not delete
    assert len(ai.models()) == 2 and panel.delete_button.description == "Confirm delete"


def test_panels_display_their_vbox(home):
    import ipywidgets as w

    for panel in (ai.TrainPanel(), ai.ModelsPanel(), ai.PredictPanel()):
        assert isinstance(panel.widget, w.VBox) and not isinstance(panel, w.Widget)
        assert hasattr(panel, "_ipython_display_")


def test_series_model_forecast_in_predict_panel(home):
    ai.train(data="sunspots", model="mlp", epochs=1, name="spots")
    panel = ai.PredictPanel("spots")
    pred = panel.predict_current()
    assert pred.task == "forecast" and np.ravel(pred.values).size >= 1
    assert bytes(panel.proba_plot.value).startswith(PNG) and "next:" in panel.top_label.value
