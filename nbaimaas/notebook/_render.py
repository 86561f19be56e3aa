"""How magics show their results: pictures beside the tables that result objects render.

Tables come from each result's own ``_repr_html_`` (the value a magic returns is shown as the
cell's ``Out``); this module adds the pictures and the two small value wrappers ``api`` returns
as plain dicts. matplotlib is imported on first use, so ``%load_ext nbaimaas`` stays fast.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np

from .. import api
from ..results import EvalResult, Prediction, TuneResult, html_table

__all__ = ["DataSummary", "LRFind", "show_figure", "show_data", "show_eval", "show_prediction",
           "show_lr_find", "trial_printer", "show_tuning", "MAX_IMAGES"]

MAX_IMAGES = 32       # a grid bigger than this is unreadable in a cell


def show_figure(fig: Any, what: str = "figure") -> None:
    """Display a matplotlib Figure as PNG.

    A plain mimebundle instead of ``display(fig)``: a Figure made without pyplot has no PNG
    formatter unless the inline backend happens to be active, and would show as text only.
    The text part is fixed so nbval and saved notebooks compare equal between runs.
    """
    from IPython.display import display

    from .plots import figure_png

    display({"image/png": figure_png(fig), "text/plain": f"<{what}>"}, raw=True)


# -- %aimaas_data --------------------------------------------------------------------------------
class DataSummary(dict):
    """``api.describe``'s dict, shown as a summary table (and example rows or texts)."""

    def _info_rows(self) -> list[dict]:
        info = self["info"]
        counts = info.get("counts", {})
        rows = [("dataset", info.get("name")), ("task", f"{info.get('task')} ({info.get('modality')})"),
                ("input shape", "x".join(map(str, info.get("input_shape", [])))),
                ("samples", ", ".join(f"{k} {v}" for k, v in counts.items())),
                ("missing values", info.get("nan_report", ""))]
        if info.get("classes"):
            per_class = info.get("class_counts") or {}
            rows.append(("classes (train)", ", ".join(f"{c}: {per_class.get(c, '?')}"
                                                      for c in info["classes"])))
        return [{"": k, "value": v} for k, v in rows]

    def _examples_html(self) -> str:
        samples, labels = self.get("samples"), self.get("sample_labels") or []
        if isinstance(samples, list) and samples and isinstance(samples[0], dict):
            rows = [{**r, "label": lab} for r, lab in zip(samples, labels or [""] * len(samples))]
            return html_table(rows, caption="first rows")
        if isinstance(samples, list) and samples and isinstance(samples[0], str):
            rows = [{"text": t, "label": lab} for t, lab in zip(samples, labels or [""] * len(samples))]
            return html_table(rows, ["text", "label"], caption="example texts")
        return ""

    def _repr_html_(self) -> str:
        return html_table(self._info_rows(), ["", "value"], "data summary") + self._examples_html()

    def __repr__(self) -> str:
        info = self["info"]
        return (f"DataSummary({info.get('name')}: {info.get('task')} on {info.get('modality')}, "
                f"input {info.get('input_shape')}, {info.get('counts')})")


def show_data(summary: DataSummary) -> None:
    """The picture of the data: an image grid or the series; tables and texts are in the repr."""
    from .plots import plot_forecast, plot_images

    modality, samples = summary["info"].get("modality"), summary.get("samples")
    if modality == "image" and samples is not None and len(samples):
        show_figure(plot_images(np.asarray(samples)[:MAX_IMAGES], labels=summary.get("sample_labels") or None),
                    "sample images")
    elif modality == "series" and samples is not None and len(samples):
        ax = plot_forecast(np.asarray(samples, dtype=float))
        ax.set_title(summary["info"].get("name", ""))
        show_figure(ax.figure, "series plot")


# -- %aimaas_eval --------------------------------------------------------------------------------
def show_eval(result: EvalResult, data: Any = None) -> None:
    """Confusion matrix (classification), residuals (regression) or a forecast (series)."""
    from .plots import plot_confusion

    if result.confusion:
        show_figure(plot_confusion(result).figure, "confusion matrix")
    elif result.task in ("regression", "forecast") and (data is None or isinstance(data, str)):
        # Only for the model's own (or a named) dataset: the picture re-samples it by name.
        _show_values_plot(result.model, result.task)


def _model_data(ref: str) -> Any:
    from ..specs import DataSpec

    spec = api.model(ref).spec.get("data")
    return DataSpec.from_dict(spec) if spec else None


def _show_values_plot(ref: str, task: str) -> None:
    from .plots import plot_forecast, plot_residuals

    data = _model_data(ref)
    if data is None:
        return
    if task == "regression":
        sample = api.sample(data, n=500)
        pred = api.predict(ref, sample["inputs"])
        show_figure(plot_residuals(np.ravel(sample["labels"]), np.ravel(pred.values)).figure, "residuals")
        return
    series = np.asarray(api.sample(data, n=1)["inputs"], dtype=float)
    steps = max(1, min(data.horizon * 4, len(series) - data.window))
    past = series[:-steps]
    pred = api.predict(ref, past[-data.window:], horizon=steps)
    show_figure(plot_forecast(past, series[-steps:], np.ravel(pred.values)).figure, "forecast")


# -- %aimaas_predict -----------------------------------------------------------------------------
def show_prediction(pred: Prediction, inputs: Any) -> None:
    """Images get a grid captioned ``label (0.98)``; a forecast is drawn after its input window."""
    from .plots import plot_forecast, plot_images

    if pred.labels is not None and _looks_like_images(inputs):
        images = np.asarray(inputs)[:MAX_IMAGES]
        show_figure(plot_images(images, labels=pred.labels[:MAX_IMAGES],
                                scores=np.max(pred.probabilities, axis=1)[:MAX_IMAGES]), "predictions")
    elif pred.task == "forecast" and pred.values is not None and np.ndim(inputs) == 1:
        show_figure(plot_forecast(np.asarray(inputs, dtype=float), None,
                                  np.ravel(pred.values[0])).figure, "forecast")


def _looks_like_images(inputs: Any) -> bool:
    if isinstance(inputs, (list, tuple)) and inputs and hasattr(inputs[0], "convert"):
        return False    # PIL images: drawn by the grid only once converted; skip the picture
    try:
        a = np.asarray(inputs)
    except ValueError:
        return False
    return a.dtype != object and np.issubdtype(a.dtype, np.number) and a.ndim in (3, 4)


# -- %aimaas_lr_find -----------------------------------------------------------------------------
class LRFind(dict):
    """``api.lr_find``'s dict (``lrs``, ``losses``, ``suggestion``) with a one-line repr."""

    @property
    def suggestion(self) -> float | None:
        return self.get("suggestion")

    def __repr__(self) -> str:
        lrs = self.get("lrs") or [float("nan")]
        return (f"LRFind(suggested lr {self.suggestion:.2e}; tried {len(lrs)} rates "
                f"from {min(lrs):.0e} to {max(lrs):.0e})")

    def _repr_html_(self) -> str:
        return f"<p>suggested learning rate: <b>{html.escape(f'{self.suggestion:.2e}')}</b></p>"


def show_lr_find(finding: LRFind) -> None:
    from .plots import plot_lr_find

    ax = plot_lr_find(finding["lrs"], finding["losses"], finding.get("suggestion"))
    show_figure(ax.figure, "LR finder")


# -- %aimaas_tune --------------------------------------------------------------------------------
def trial_printer(metric: str):
    """A ``progress`` for ``api.tune``: one text line per finished trial (no widgets needed)."""
    def show(trial: dict) -> None:
        print(TuneResult.line(trial, metric), flush=True)
    return show


def show_tuning(result: TuneResult) -> None:
    """The trials' values in order with the best so far; the table is the result's own repr."""
    from .plots import plot_tuning

    if result.message:
        print(f"Study {result.study} {result.message}.")
    if result.trials:
        show_figure(plot_tuning(result).figure, "tuning plot")
