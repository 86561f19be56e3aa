"""Plots for every step, as functions ``plot_x(data, ax=None, ...) -> Axes``.

Built on matplotlib's object API only: when no ``ax`` is given a fresh
``matplotlib.figure.Figure`` is made, never through pyplot, so nothing lands in pyplot's global
list of figures, nothing is shown twice by the inline backend, and the live view can redraw from
a background thread. Inputs are numpy arrays, lists or nbaimaas result objects (never tensors).
"""

from __future__ import annotations

import io
import math
from typing import Any, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .progress import main_metric

__all__ = [
    "plot_history", "plot_confusion", "plot_images", "plot_forecast", "plot_residuals",
    "plot_lr_find", "plot_probabilities", "plot_tuning", "figure_png",
]

_WRONG = "tab:red"


def _axes(ax: Axes | None, figsize: tuple[float, float] = (6.0, 3.6)) -> Axes:
    if ax is not None:
        return ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig.add_subplot()


def _root(fig_or_ax: Figure | Axes) -> Figure:
    # ``.figure.figure`` is the top-level Figure for an Axes, a SubFigure and a Figure alike,
    # on matplotlib 3.7 as well as 3.10+ (where get_figure grew its ``root`` argument).
    return fig_or_ax.figure.figure


def figure_png(fig_or_ax: Figure | Axes, dpi: int = 80) -> bytes:
    """PNG bytes of a figure (or of the figure an Axes is on), drawn with Agg, not pyplot."""
    fig = _root(fig_or_ax)
    buf = io.BytesIO()
    # savefig picks the Agg canvas for "png" itself; the Figure keeps no backend state.
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


# -- training ------------------------------------------------------------------------------------
def _column(history: list[dict], key: str) -> np.ndarray:
    return np.array([h.get(key, math.nan) for h in history], dtype=float)


def plot_history(history: Any, ax: Axes | None = None, metric: str | None = None,
                 best_epoch: int | None = None) -> Axes:
    """Learning curves: losses on ``ax``, the main metric on a twin axis, the best epoch marked.

    ``history`` is a list of per-epoch dicts (``TrainResult.history``) or anything with a
    ``.history`` (a TrainResult, a RunProgress), whose ``best_epoch`` is used unless given.
    """
    if hasattr(history, "history"):
        best_epoch = best_epoch if best_epoch is not None else getattr(history, "best_epoch", None)
        history = history.history
    ax = _axes(ax)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    if not history:
        ax.set_title("no epochs yet")
        return ax
    keys = sorted({k for h in history for k in h})
    epochs = np.array([h.get("epoch", i + 1) for i, h in enumerate(history)], dtype=float)
    style = {"marker": "o", "markersize": 3} if len(history) <= 30 else {}
    for key in (k for k in keys if k.endswith("loss")):
        ax.plot(epochs, _column(history, key), label=key, **style)
    handles, labels = ax.get_legend_handles_labels()
    metric = metric or main_metric(keys)
    if metric and metric in keys:
        twin = ax.twinx()
        twin.plot(epochs, _column(history, metric), label=metric, color="tab:green", **style)
        twin.set_ylabel(metric)
        h2, l2 = twin.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    if best_epoch:
        line = ax.axvline(best_epoch, color="0.5", linestyle="--", linewidth=1,
                          label=f"best epoch {best_epoch}")
        handles, labels = handles + [line], labels + [line.get_label()]
    # Above the plot, in one row: "best" placement cannot see the twin axis's lines.
    ax.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(handles),
              fontsize="small", frameon=False, handlelength=1.5, columnspacing=1.0)
    ax.xaxis.get_major_locator().set_params(integer=True)
    return ax


def plot_lr_find(lrs: Sequence[float], losses: Sequence[float], suggestion: float | None = None,
                 ax: Axes | None = None) -> Axes:
    """Loss against learning rate on a log axis, with the suggested rate marked."""
    ax = _axes(ax)
    ax.plot(lrs, losses, label="loss")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    if suggestion:
        ax.axvline(suggestion, color="tab:red", linestyle="--", label=f"suggested {suggestion:.1e}")
    ax.legend(fontsize="small")
    return ax


def plot_tuning(result: Any, ax: Axes | None = None) -> Axes:
    """A hyperparameter search: each trial's value in trial order, the best so far as a step line,
    pruned trials as hollow markers (at their last reported value).

    Takes a TuneResult or anything with ``trials`` (dicts with number, state, value), ``metric``
    and ``direction``.
    """
    ax = _axes(ax)
    trials = [t for t in result.trials if t.get("value") is not None]
    ax.set_xlabel("trial")
    ax.set_ylabel(result.metric)
    if not trials:
        ax.set_title("no finished trials yet")
        return ax
    done = [t for t in trials if t["state"] == "COMPLETE"]
    pruned = [t for t in trials if t["state"] == "PRUNED"]
    ax.plot([t["number"] for t in done], [t["value"] for t in done], "o", label="complete")
    if pruned:
        ax.plot([t["number"] for t in pruned], [t["value"] for t in pruned], "o", mfc="none",
                color="0.5", label="pruned")
    if done:
        pick = np.fmin if result.direction == "minimize" else np.fmax
        best = pick.accumulate(np.array([t["value"] for t in done], dtype=float))
        # Carried on to the last trial, so a flat tail reads as "no trial since beat it".
        xs = [t["number"] for t in done] + [max(t["number"] for t in trials)]
        ax.step(xs, np.append(best, best[-1]), where="post", color="tab:green", label="best so far")
    ax.legend(fontsize="small")
    ax.xaxis.get_major_locator().set_params(integer=True)
    return ax


# -- evaluation ----------------------------------------------------------------------------------
def plot_confusion(result_or_matrix: Any, classes: Sequence[str] | None = None,
                   ax: Axes | None = None, normalize: bool = False) -> Axes:
    """Confusion matrix (rows: true class, columns: predicted) with the count in every cell.

    Takes an EvalResult (its ``confusion`` and ``classes``) or a square matrix. ``normalize``
    divides each row by its total, so cells read as recall per true class.
    """
    matrix = getattr(result_or_matrix, "confusion", result_or_matrix)
    if matrix is None:
        raise ValueError("this result has no confusion matrix (it is not a classification)")
    cm = np.asarray(matrix, dtype=float)
    classes = list(classes or getattr(result_or_matrix, "classes", None) or range(len(cm)))
    if normalize:
        cm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    n = len(cm)
    ax = _axes(ax, figsize=(max(4.0, 0.45 * n + 2), max(3.5, 0.45 * n + 1.5)))
    image = ax.imshow(cm, cmap="Blues", vmin=0)
    ax.set_xticks(range(n), [str(c) for c in classes], rotation=90 if n > 10 else 0)
    ax.set_yticks(range(n), [str(c) for c in classes])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 30:                         # beyond that the numbers are unreadable anyway
        _cell_texts(ax, cm, normalize, threshold=cm.max() / 2 if cm.size else 0)
    _root(ax).colorbar(image, ax=ax, shrink=0.8)
    return ax


def _cell_texts(ax: Axes, cm: np.ndarray, normalize: bool, threshold: float) -> None:
    for (i, j), v in np.ndenumerate(cm):
        text = f"{v:.2f}" if normalize else f"{int(v)}"
        ax.text(j, i, text, ha="center", va="center", fontsize="small",
                color="white" if v > threshold else "black")


def plot_residuals(y_true: Sequence[float], y_pred: Sequence[float], ax: Axes | None = None) -> Axes:
    """Residuals (true - predicted) against the prediction; a good model scatters around 0."""
    y_true = np.asarray(y_true, dtype=float).ravel()
    y_pred = np.asarray(y_pred, dtype=float).ravel()
    residuals = y_true - y_pred
    ax = _axes(ax)
    ax.scatter(y_pred, residuals, s=10, alpha=0.6)
    ax.axhline(0, color="0.3", linewidth=1)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true - predicted")
    ax.set_title(f"residuals (MAE {np.mean(np.abs(residuals)):.4g})")
    return ax


# -- prediction ----------------------------------------------------------------------------------
def plot_probabilities(classes: Sequence[str], probs: Sequence[float], ax: Axes | None = None,
                       top: int = 10) -> Axes:
    """The ``top`` most likely classes as horizontal bars, the most likely at the top."""
    probs = np.asarray(probs, dtype=float).ravel()
    order = np.argsort(-probs, kind="stable")[:top]
    ax = _axes(ax, figsize=(5.0, 0.3 * len(order) + 1.0))
    names = [str(classes[i]) for i in order]
    bars = ax.barh(range(len(order)), probs[order], color="tab:blue")
    ax.set_yticks(range(len(order)), names)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.1)
    ax.set_xlabel("probability")
    ax.bar_label(bars, fmt="%.2f", padding=2, fontsize="small")
    return ax


def plot_forecast(history_values: Sequence[float], actual: Sequence[float] | None = None,
                  predicted: Sequence[float] | None = None, ax: Axes | None = None) -> Axes:
    """The series so far, then the actual future and the forecast side by side."""
    past = np.asarray(history_values, dtype=float).ravel()
    ax = _axes(ax, figsize=(7.0, 3.2))
    ax.plot(np.arange(len(past)), past, color="0.35", label="history")
    for values, label, style in ((actual, "actual", "-"), (predicted, "forecast", "--")):
        if values is None:
            continue
        future = np.asarray(values, dtype=float).ravel()
        # Start each future line at the last known point so it visibly continues the series.
        x = np.arange(len(past) - 1, len(past) + len(future))
        y = np.concatenate([past[-1:], future]) if len(past) else future
        ax.plot(x[-len(y):], y, linestyle=style, marker="o", markersize=3, label=label)
    ax.axvline(len(past) - 0.5, color="0.7", linestyle=":", linewidth=1)
    ax.set_xlabel("time step")
    ax.legend(fontsize="small")
    return ax


def _as_images(images: Any) -> np.ndarray:
    """[N,H,W], [N,C,H,W], [N,H,W,C] or flat square [N,H*W] -> [N,H,W] or [N,H,W,3|4]."""
    x = np.asarray(images, dtype=float)
    if x.ndim == 2:
        side = math.isqrt(x.shape[1])
        if side * side != x.shape[1]:
            raise ValueError(f"cannot show rows of {x.shape[1]} values as square images")
        return x.reshape(len(x), side, side)
    if x.ndim == 4 and x.shape[1] in (1, 3) and x.shape[-1] not in (3, 4):
        x = x.transpose(0, 2, 3, 1)      # channels first (torch layout) -> channels last
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim not in (3, 4):
        raise ValueError(f"expected images shaped [N,H,W] or [N,C,H,W], got {list(x.shape)}")
    return x


def _scale_colour(img: np.ndarray) -> np.ndarray:
    if img.ndim == 3 and (img.min() < 0 or img.max() > 1):   # imshow clips RGB outside [0, 1]
        span = img.max() - img.min()
        return (img - img.min()) / (span if span else 1)
    return img


def _captions(n: int, labels, captions, scores, truth) -> tuple[list[str], list[str]]:
    """Caption text and colour per image: ``7 (0.98)``, red where it differs from ``truth``."""
    if labels is not None and hasattr(labels, "probabilities"):   # a Prediction
        if scores is None and labels.probabilities is not None:
            scores = np.max(labels.probabilities, axis=1)
        labels = labels.labels
    if captions is not None:
        texts = [str(c) for c in captions]
    elif labels is not None:
        texts = [str(lab) if scores is None else f"{lab} ({float(s):.2f})"
                 for lab, s in zip(labels, scores if scores is not None else [None] * n)]
    else:
        texts = [""] * n
    colours = ["black"] * n
    if truth is not None and labels is not None:
        colours = [_WRONG if str(p) != str(t) else "black" for p, t in zip(labels, truth)]
    # Fewer captions than images (a label list cut short) leaves the rest uncaptioned.
    return (texts + [""] * n)[:n], (colours + ["black"] * n)[:n]


def plot_images(images: Any, labels: Sequence | None = None, captions: Sequence[str] | None = None,
                ncols: int = 8, fig: Figure | None = None, truth: Sequence | None = None,
                scores: Sequence[float] | None = None) -> Figure:
    """A grid of images with captions; returns the Figure (one Axes per image).

    ``labels`` are shown under each image, with their ``scores`` as ``7 (0.98)``; a Prediction
    may be passed as ``labels`` (its top probability becomes the score). Where ``truth`` is given,
    wrong labels are drawn in red. ``captions`` replace the label text entirely.
    """
    x = _as_images(images)
    n = len(x)
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    fig = fig or Figure(figsize=(1.3 * ncols, 1.45 * nrows), layout="constrained")
    texts, colours = _captions(n, labels, captions, scores, truth)
    for i in range(n):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        ax.imshow(_scale_colour(x[i]), cmap="gray_r" if x[i].ndim == 2 else None)
        ax.set_axis_off()
        if texts[i]:
            ax.set_title(texts[i], fontsize="small", color=colours[i])
    return fig
