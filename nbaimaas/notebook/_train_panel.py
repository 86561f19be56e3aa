"""TrainPanel: choose data, model and hyperparameters, then Train and Stop with live curves."""

from __future__ import annotations

import threading
from typing import Any

import ipywidgets as w

from .. import api
from ..specs import INIT_SCHEMES, OPTIMIZERS
from ._panel_common import Panel, find, guarded, styled
from .live import LiveView

__all__ = ["TrainPanel"]


class TrainPanel(Panel):
    """Train in the background so Stop works while the kernel is idle.

    ``panel.run`` is the current Run, ``panel.result`` its TrainResult once it ended, and
    ``panel.wait(timeout)`` waits for the background thread (for tests and scripts).
    """

    def __init__(self, data: str = "digits", model: str = "mlp", epochs: int = 10):
        self._infos = {d.name: d for d in api.datasets()}
        names = sorted(self._infos)
        self.run: Any = None
        self.result: Any = None
        self.view: LiveView | None = None
        self._thread: threading.Thread | None = None
        self._stop_requested = threading.Event()
        self._build(names, data if data in names else names[0], epochs)
        self._on_dataset()
        if model in self.arch.options:
            self.arch.value = model

    # -- layout ---------------------------------------------------------------------------------
    def _build(self, names: list[str], data: str, epochs: int) -> None:
        self.dataset = styled(w.Dropdown(options=names, value=data, description="data"), "dataset")
        self.arch = styled(w.Dropdown(description="model"), "arch")
        self.init = styled(w.Dropdown(options=INIT_SCHEMES, value="default", description="init"), "init")
        self.optimizer = styled(w.Dropdown(options=OPTIMIZERS, value="adam", description="optimizer"),
                                "optimizer")
        self.lr = styled(w.FloatLogSlider(value=1e-3, base=10, min=-5, max=0, step=0.1,
                                          readout_format=".1e", description="lr"), "lr")
        self.epochs = styled(w.BoundedIntText(value=epochs, min=1, max=100_000, description="epochs"), "epochs")
        self.batch_size = styled(w.BoundedIntText(value=64, min=1, max=1 << 20, description="batch"),
                                 "batch-size")
        self.limit = styled(w.BoundedIntText(value=0, min=0, max=10**9, description="limit",
                                             tooltip="use only the first N samples (0: all)"), "limit")
        self.name = styled(w.Text(placeholder="register the best model as (optional)",
                                  description="save as"), "name")
        self.train_button = styled(w.Button(description="Train", button_style="primary", icon="play"),
                                   "train-button")
        self.stop_button = styled(w.Button(description="Stop", icon="stop", disabled=True), "stop-button")
        self.live_box = styled(w.VBox([]), "live-box")
        self.metrics = styled(w.HTML(), "metrics")
        self.error = styled(w.HTML(), "error")
        self.dataset.observe(lambda _change: self._on_dataset(), names="value")
        self.train_button.on_click(lambda _b: self.train())
        self.stop_button.on_click(lambda _b: self.stop())
        form = w.VBox([self.dataset, self.arch, self.init, self.optimizer, self.lr,
                       w.HBox([self.epochs, self.batch_size]), w.HBox([self.limit, self.name])])
        self.widget = styled(w.VBox([form, w.HBox([self.train_button, self.stop_button]),
                                     self.live_box, self.metrics, self.error]), "train-panel")

    @guarded
    def _on_dataset(self) -> None:
        """Offer only the architectures that fit the chosen data's modality and task."""
        info = self._infos[self.dataset.value]
        archs = [a.name for a in api.architectures(task=info.task, modality=info.modality)
                 if a.name != "layers"]      # "layers" needs a layer list the form cannot give
        previous = self.arch.value
        self.arch.options = archs
        self.arch.value = previous if previous in archs else (archs[0] if archs else None)

    # -- actions --------------------------------------------------------------------------------
    def fields(self) -> dict:
        """The form as ``api.train`` keywords."""
        return {"data": self.dataset.value, "model": self.arch.value, "init": self.init.value,
                "optimizer": self.optimizer.value, "lr": float(self.lr.value),
                "epochs": int(self.epochs.value), "batch_size": int(self.batch_size.value),
                "limit": int(self.limit.value) or None, "name": self.name.value.strip() or None}

    @guarded
    def train(self) -> None:
        """Start a run in a daemon thread (what the Train button does)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self.clear_error()
        self.metrics.value = ""
        fields = self.fields()
        api.train_spec(**fields)            # a bad form value is reported now, in the panel
        self.view = LiveView(epochs=fields["epochs"], mode="widget", auto_display=False,
                             final_figure=False)
        self.live_box.children = [self.view.widget]
        self.run = self.result = None
        self._stop_requested.clear()
        self._busy(True)
        self._thread = threading.Thread(target=self._follow, args=(fields,), daemon=True,
                                        name="nbaimaas-train-panel")
        self._thread.start()

    def _follow(self, fields: dict) -> None:
        try:
            self.run = api.start_training(**fields)
            if self._stop_requested.is_set():
                self.run.stop()
            self.result = api.watch(self.run, self.view.update)
            self.metrics.value = self.result._repr_html_()
        except Exception as exc:  # noqa: BLE001 - a thread has no cell to raise into: show it
            self.show_error(exc)
        finally:
            self._busy(False)

    @guarded
    def stop(self) -> None:
        """Ask the run to stop at the next batch boundary (what the Stop button does)."""
        self._stop_requested.set()
        if self.run is not None:
            self.run.stop()

    def wait(self, timeout: float | None = None) -> Any:
        """Wait for the background run to end; returns its TrainResult (None if it failed)."""
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError(f"training still running after {timeout} s")
        return self.result

    def _busy(self, busy: bool) -> None:
        self.train_button.disabled = busy
        self.stop_button.disabled = not busy

    # -- what tests and browser checks look at ---------------------------------------------------
    @property
    def progress(self) -> Any:
        """The live view's progress bar (IntProgress), or None before the first run."""
        return find(self.live_box, "nbaimaas-progress")

    @property
    def plot(self) -> Any:
        """The live view's learning-curve Image, or None before the first run."""
        return find(self.live_box, "nbaimaas-live-plot")
