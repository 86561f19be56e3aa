"""PredictPanel: pick a registered model, give it an input, see its top classes or forecast."""

from __future__ import annotations

import io
from typing import Any

import ipywidgets as w
import numpy as np

from .. import api
from ..specs import DataSpec
from ._panel_common import Panel, guarded, message_html, styled

__all__ = ["PredictPanel"]

_SAMPLE, _UPLOAD, _TEXT = "sample", "upload", "text"


class PredictPanel(Panel):
    """Inputs come from a slider over the model's own test samples, an uploaded file (image or
    CSV) or, for text models, a text box; the last one touched is the current input.

    ``panel.predict_current()`` predicts the current input and returns the Prediction.
    """

    def __init__(self, model: Any = None, samples: int = 32):
        self.n_samples = samples
        self.prediction: Any = None
        self._samples: dict | None = None
        self._uploaded: Any = None
        self._source = _SAMPLE
        self._build()
        refs = list(self.model.options)
        if model is not None:     # a name, a ref, a ModelVersion or a TrainResult
            ref = getattr(model, "ref", None) or getattr(model, "model", None) or str(model)
            self.model.value = api.model(ref).ref
        elif refs:
            self.model.value = refs[0]

    # -- layout ---------------------------------------------------------------------------------
    def _build(self) -> None:
        refs = [v.ref for v in api.models()]
        self.model = styled(w.Dropdown(options=refs, value=None, description="model"), "predict-model")
        self.sample = styled(w.IntSlider(value=0, min=0, max=0, description="sample",
                                         continuous_update=False), "sample")
        self.upload = styled(w.FileUpload(accept="image/*,.csv", multiple=False,
                                          description="upload"), "upload")
        self.text = styled(w.Text(placeholder="type a text, then Enter", description="text",
                                  continuous_update=False, layout=w.Layout(display="none")), "text-input")
        self.preview = styled(w.Image(format="png", layout=w.Layout(display="none")), "input-preview")
        self.truth = styled(w.HTML(), "truth")
        self.proba_plot = styled(w.Image(format="png", layout=w.Layout(display="none")), "proba-plot")
        self.top_label = styled(w.HTML(), "top-label")
        self.error = styled(w.HTML(), "error")
        self.model.observe(lambda _c: self._on_model(), names="value")
        self.sample.observe(lambda _c: self._use(_SAMPLE), names="value")
        self.upload.observe(lambda c: self._on_upload(c["new"]), names="value")
        self.text.observe(lambda _c: self._use(_TEXT), names="value")
        inputs = w.VBox([self.model, self.sample, w.HBox([self.upload, self.text])])
        self.widget = styled(w.VBox([inputs, w.HBox([self.preview, self.truth]), self.top_label,
                                     self.proba_plot, self.error]), "predict-panel")

    # -- inputs ---------------------------------------------------------------------------------
    @guarded
    def _on_model(self) -> None:
        """Load a few test samples of the model's own dataset for the slider."""
        self.clear_error()
        self._samples = None
        spec = api.model(self.model.value).spec.get("data") or {}
        if spec.get("name", "inline") != "inline":
            self._samples = api.sample(DataSpec.from_dict(spec), n=self.n_samples)
        info = (self._samples or {}).get("info", {})
        self.text.layout.display = "" if info.get("modality") == "text" else "none"
        count = self._sample_count()
        self.sample.disabled = count == 0
        self.sample.max = max(count - 1, 0)
        if count:
            self._use(_SAMPLE)

    def _sample_count(self) -> int:
        if not self._samples:
            return 0
        n = len(self._samples["inputs"])
        if self._info().get("modality") == "series":      # slide a window along the test stretch
            return max(n - self._window() - self._horizon() + 1, 0)
        return n

    def _info(self) -> dict:
        return (self._samples or {}).get("info", {})

    def _window(self) -> int:
        return int(self._info().get("input_shape", [1])[0])

    def _horizon(self) -> int:
        return int(self._info().get("n_outputs", 1))

    @guarded
    def _use(self, source: str) -> None:
        self._source = source
        self.predict_current()

    @guarded
    def _on_upload(self, files: Any) -> None:
        if not files:
            return
        item = files[-1]
        content = bytes(item["content"])
        if item["name"].lower().endswith(".csv") or item.get("type") == "text/csv":
            self._uploaded = _csv_rows(content, self._target())
        else:
            self._uploaded = _image_like(content, self._samples)
        self._use(_UPLOAD)

    def _target(self) -> str | None:
        spec = api.model(self.model.value).spec.get("data") or {}
        return spec.get("target")

    def current_input(self) -> tuple[Any, Any]:
        """(inputs of one sample, its true label or future values, or None)."""
        if self._source == _TEXT:
            return [self.text.value], None
        if self._source == _UPLOAD:
            return self._uploaded, None
        if not self._samples:
            raise ValueError("this model's data cannot be sampled: upload a file instead")
        i, inputs = self.sample.value, self._samples["inputs"]
        if self._info().get("modality") == "series":
            series = np.asarray(inputs, dtype=float)
            end = i + self._window()
            return series[i:end], series[end:end + self._horizon()]
        one = inputs.iloc[i:i + 1] if hasattr(inputs, "iloc") else inputs[i:i + 1]
        return one, self._samples["labels"][i]

    # -- prediction -----------------------------------------------------------------------------
    def predict_current(self) -> Any:
        """Predict the current input, update the chart and the label; returns the Prediction."""
        inputs, truth = self.current_input()
        if inputs is None:
            raise ValueError("no input yet: move the slider, upload a file or type a text")
        pred = api.predict(self.model.value, inputs, top_k=1,
                           horizon=self._horizon() if self._info().get("task") == "forecast" else None)
        self.prediction = pred
        self._render(pred, inputs, truth)
        self.clear_error()
        return pred

    def _render(self, pred: Any, inputs: Any, truth: Any) -> None:
        from .plots import figure_png, plot_forecast, plot_images, plot_probabilities

        self.truth.value = "" if truth is None or pred.task == "forecast" else \
            message_html(f"true: {_short(truth)}")
        if pred.labels is not None:
            top = pred.top(1)[0][0]
            self.top_label.value = f"<b>{top[0]}</b> ({top[1]:.2f})"
            self._image(self.proba_plot, figure_png(plot_probabilities(pred.classes, pred.probabilities[0])))
        elif pred.task == "forecast":
            values = np.ravel(pred.values[0])
            self.top_label.value = "next: " + ", ".join(f"{v:.4g}" for v in values[:8])
            self._image(self.proba_plot, figure_png(plot_forecast(inputs, truth, values)))
        else:
            self.top_label.value = f"<b>{float(np.ravel(pred.values)[0]):.4g}</b>"
            self.proba_plot.layout.display = "none"
        if self._info().get("modality") == "image" or (self._source == _UPLOAD and np.ndim(inputs) >= 3):
            self._image(self.preview, figure_png(plot_images(np.asarray(inputs)[:1], ncols=1), dpi=60))

    @staticmethod
    def _image(widget: Any, png: bytes) -> None:
        widget.value = png
        widget.layout.display = ""


def _short(value: Any) -> str:
    if isinstance(value, (list, np.ndarray)):
        return ", ".join(f"{float(v):.4g}" for v in np.ravel(value)[:8])
    return str(value)


def _csv_rows(content: bytes, target: str | None) -> Any:
    import pandas as pd

    frame = pd.read_csv(io.BytesIO(content))
    return frame.drop(columns=[target]) if target and target in frame.columns else frame


def _image_like(content: bytes, samples: dict | None) -> np.ndarray:
    """An uploaded picture as one grayscale image shaped and scaled like the model's samples."""
    from PIL import Image

    img = Image.open(io.BytesIO(content)).convert("L")
    ref = None if not samples else np.asarray(samples["inputs"], dtype=float)
    if ref is not None and ref.ndim >= 3:
        img = img.resize((ref.shape[-1], ref.shape[-2]))
    a = np.asarray(img, dtype=float) / 255.0
    top = float(ref.max()) if ref is not None and ref.size else 255.0
    # Photos of digits are usually dark ink on light paper; the data sets are the opposite.
    if ref is not None and ref.size and a.mean() > 0.5 and ref.mean() < 0.5 * top:
        a = 1.0 - a
    return (a * top)[None]
