"""Every plot returns an Axes/Figure with the artists it promises, without touching pyplot."""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from nbaimaas.notebook import plots  # noqa: E402
from nbaimaas.results import EvalResult, Prediction, TrainResult  # noqa: E402

HISTORY = [
    {"epoch": e, "lr": 0.01, "train_loss": 1 / e, "val_loss": 1.2 / e, "val_accuracy": 1 - 0.3 / e}
    for e in range(1, 6)
]


def _labels(ax: Axes) -> list[str]:
    return [line.get_label() for line in ax.get_lines()]


def _twin(ax: Axes) -> Axes:
    others = [a for a in ax.figure.axes if a is not ax]
    assert len(others) == 1
    return others[0]


def test_history_losses_metric_and_best_epoch():
    ax = plots.plot_history(HISTORY, best_epoch=4)
    assert isinstance(ax, Axes) and isinstance(ax.figure, Figure)
    assert _labels(ax) == ["train_loss", "val_loss", "best epoch 4"]
    assert _labels(_twin(ax)) == ["val_accuracy"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "train_loss", "val_loss", "val_accuracy", "best epoch 4"]
    np.testing.assert_allclose(ax.get_lines()[0].get_xdata(), [1, 2, 3, 4, 5])


def test_history_from_train_result_and_regression_metric():
    hist = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1 / e, "val_mae": 2 / e, "val_rmse": 3 / e,
             "val_r2": 0.5} for e in (1, 2)]
    result = TrainResult(run_id="r", status="completed", metrics={}, history=hist, best_epoch=2)
    ax = plots.plot_history(result)
    assert _labels(ax) == ["train_loss", "val_loss", "best epoch 2"]
    assert _labels(_twin(ax)) == ["val_mae"]
    ax = plots.plot_history(hist, metric="val_r2")
    assert _labels(_twin(ax)) == ["val_r2"]


def test_history_empty_and_train_only():
    assert plots.plot_history([]).get_title() == "no epochs yet"
    ax = plots.plot_history([{"epoch": 1, "train_loss": 0.5}])
    assert _labels(ax) == ["train_loss"] and len(ax.figure.axes) == 1


def test_history_onto_given_axes():
    fig = Figure()
    ax = fig.add_subplot()
    assert plots.plot_history(HISTORY, ax=ax) is ax


def test_confusion_counts_and_normalized():
    cm = [[5, 1, 0], [2, 7, 1], [0, 0, 9]]
    ax = plots.plot_confusion(cm, classes=["a", "b", "c"])
    assert [t.get_text() for t in ax.texts] == ["5", "1", "0", "2", "7", "1", "0", "0", "9"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert ax.get_xlabel() == "predicted" and ax.get_ylabel() == "true"
    ax = plots.plot_confusion(cm, normalize=True)
    assert ax.texts[0].get_text() == "0.83" and ax.texts[4].get_text() == "0.70"


def test_confusion_from_eval_result():
    result = EvalResult(model="m:1", split="test", metrics={}, confusion=[[3, 1], [0, 4]],
                        classes=["cat", "dog"])
    ax = plots.plot_confusion(result)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["cat", "dog"]
    assert len(ax.texts) == 4
    with pytest.raises(ValueError, match="no confusion"):
        plots.plot_confusion(EvalResult(model="m:1", split="test", metrics={}))


@pytest.mark.parametrize("shape", [(10, 8, 8), (10, 1, 8, 8), (10, 3, 8, 8), (10, 8, 8, 3), (10, 64)])
def test_images_grid_shapes(shape):
    fig = plots.plot_images(np.random.default_rng(0).normal(size=shape), ncols=4)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 10
    assert all(len(ax.images) == 1 for ax in fig.axes)


def test_images_prediction_captions_wrong_in_red():
    images = np.zeros((3, 8, 8))
    fig = plots.plot_images(images, labels=["7", "1", "2"], scores=[0.98, 0.5, 0.751], truth=["7", "4", "2"])
    titles = [ax.title for ax in fig.axes]
    assert [t.get_text() for t in titles] == ["7 (0.98)", "1 (0.50)", "2 (0.75)"]
    assert titles[1].get_color() == "tab:red" and titles[0].get_color() == "black"


def test_images_from_prediction_and_plain_captions():
    pred = Prediction(model="m:1", task="classification", labels=["a", "b"], classes=["a", "b"],
                      probabilities=np.array([[0.9, 0.1], [0.3, 0.7]]))
    fig = plots.plot_images(np.zeros((2, 4, 4)), labels=pred)
    assert [ax.title.get_text() for ax in fig.axes] == ["a (0.90)", "b (0.70)"]
    fig = plots.plot_images(np.zeros((3, 4, 4)), captions=["x", "y"])
    assert [ax.title.get_text() for ax in fig.axes] == ["x", "y", ""]
    with pytest.raises(ValueError):
        plots.plot_images(np.zeros((2, 5)))


def test_forecast_lines():
    ax = plots.plot_forecast(np.arange(20.0), actual=[20, 21, 22], predicted=[20.5, 21.5, 22.5])
    labels = _labels(ax)
    assert labels[:3] == ["history", "actual", "forecast"]
    forecast = ax.get_lines()[2]
    np.testing.assert_allclose(forecast.get_xdata(), [19, 20, 21, 22])   # joined to the last point
    assert _labels(plots.plot_forecast([1.0, 2.0]))[:1] == ["history"]


def test_residuals_scatter():
    ax = plots.plot_residuals([1, 2, 3, 4], [1.5, 2, 2.5, 4])
    assert len(ax.collections) == 1
    np.testing.assert_allclose(ax.collections[0].get_offsets()[:, 1], [-0.5, 0, 0.5, 0])
    assert ax.get_title() == "residuals (MAE 0.25)"


def test_lr_find_log_axis_and_suggestion():
    lrs = np.logspace(-5, 0, 30)
    ax = plots.plot_lr_find(lrs, np.linspace(2, 0.5, 30), suggestion=1e-3)
    assert ax.get_xscale() == "log"
    assert _labels(ax) == ["loss", "suggested 1.0e-03"]
    assert len(_labels(plots.plot_lr_find(lrs, np.ones(30)))) == 1


def test_probabilities_top_bars_sorted():
    classes = [str(i) for i in range(12)]
    probs = np.linspace(0.01, 0.12, 12)
    ax = plots.plot_probabilities(classes, probs, top=5)
    assert len(ax.patches) == 5
    assert [t.get_text() for t in ax.get_yticklabels()] == ["11", "10", "9", "8", "7"]
    assert ax.yaxis_inverted()                    # most likely at the top


def test_figure_png_from_figure_and_axes():
    ax = plots.plot_history(HISTORY)
    for target in (ax, ax.figure):
        png = plots.figure_png(target, dpi=40)
        assert png.startswith(b"\x89PNG\r\n\x1a\n")


def test_no_pyplot_figures_leak():
    plots.plot_history(HISTORY)
    plots.plot_images(np.zeros((2, 4, 4)))
    if "matplotlib.pyplot" in sys.modules:        # another test may have imported it
        assert sys.modules["matplotlib.pyplot"].get_fignums() == []
