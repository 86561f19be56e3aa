"""The live view of a run: an observer of its events that draws progress without slowing it.

``LiveView`` feeds every event into a ``RunProgress`` (cheap) and redraws only when a throttle
window has passed, so a Progress event between windows costs a few microseconds. It renders as:

- ``"widget"``: an ``IntProgress`` bar, an ``HTML`` status line and an ``Image`` of the learning
  curves, all updated by setting widget *values* (never by printing into an Output widget, which
  breaks nbval and saved notebooks);
- ``"text"``: one deterministic line per epoch and one at the end (nbval can compare them);
- ``"none"``: nothing; the state is still kept.

At the end it also displays a static PNG of the learning curves, so a saved notebook, an HTML
export or nbval shows the result without a live widget frontend.
"""

from __future__ import annotations

import html
import math
import os
import sys
import time
from typing import Any, Callable

from ..events import EpochEnded, Event, Progress, RunEnded
from .progress import RunProgress, format_bar, format_end, format_epoch_line

__all__ = ["LiveView", "resolve_mode", "in_kernel", "MODES", "ENV_VAR"]

MODES = ("auto", "widget", "text", "none")
ENV_VAR = "NBAIMAAS_PROGRESS"

#: A redraw of the plot may take at most this share of the time between redraws, so a slow
#: machine (or a long history) draws less often instead of slowing training down. A draw costs
#: ~50-200 ms on a small CPU; status updates are microseconds and are not budgeted.
_PLOT_BUDGET = 0.1


def _shell():
    """The running IPython shell, or None (without importing IPython when nobody has)."""
    if "IPython" not in sys.modules:
        return None
    from IPython import get_ipython
    return get_ipython()


def in_kernel() -> bool:
    """True inside a Jupyter kernel (ZMQInteractiveShell or a subclass, e.g. Colab's)."""
    return any(cls.__name__ == "ZMQInteractiveShell" for cls in type(_shell()).__mro__)


def _has_widgets() -> bool:
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_mode(mode: str = "auto") -> str:
    """The concrete mode for ``mode``: the env var NBAIMAAS_PROGRESS decides for "auto"."""
    if mode not in MODES:
        raise ValueError(f"unknown progress mode {mode!r}; use one of {', '.join(MODES)}")
    if mode != "auto":
        return mode
    env = os.environ.get(ENV_VAR, "").strip().lower()
    if env:
        if env not in MODES[1:]:
            raise ValueError(f"{ENV_VAR}={env!r} is not one of widget, text, none")
        return env
    return "widget" if in_kernel() and _has_widgets() else "text"


class LiveView:
    """Shows a run's events as they arrive; call it (or ``update``) with each event.

    ``epochs`` is the planned length when the view may miss RunStarted (attaching mid-run).
    ``auto_display`` shows the widget on the first event when inside IPython; panels that embed
    ``widget`` in their own layout pass False, and ``final_figure=False`` to skip the static
    figure at the end. ``clock`` is the throttle's time source (tests pass a fake one).
    """

    def __init__(self, epochs: int | None = None, mode: str = "auto", min_interval: float = 0.25,
                 *, auto_display: bool = True, final_figure: bool = True, dpi: int = 80,
                 clock: Callable[[], float] = time.monotonic):
        self.state = RunProgress(epochs=epochs or 0)
        self.mode = resolve_mode(mode)
        self.min_interval = min_interval
        self.auto_display, self.final_figure, self.dpi = auto_display, final_figure, dpi
        self._clock = clock
        self._next_status = -math.inf   # clock time from which the bar/label may redraw
        self._next_plot = -math.inf     # ... and the plot
        self._plot_dirty = False        # an epoch ended that the plot does not show yet
        self._shown = self._closed = False
        self.status_renders = 0         # counted so tests can check the throttle
        self.plot_renders = 0
        self.last_png: bytes | None = None
        self._box = self._build() if self.mode == "widget" else None

    # -- widgets -----------------------------------------------------------------------------
    def _build(self):
        import ipywidgets as w
        self._bar = w.IntProgress(value=0, min=0, max=1, layout=w.Layout(width="100%"))
        self._label = w.HTML(value=_status_html("waiting for the run to start"))
        # Hidden until there is a first PNG: an empty Image shows as a broken-image icon.
        self._image = w.Image(format="png", layout=w.Layout(display="none"))
        self._bar.add_class("nbaimaas-progress")
        self._label.add_class("nbaimaas-status")
        self._image.add_class("nbaimaas-live-plot")
        box = w.VBox([self._bar, self._label, self._image])
        box.add_class("nbaimaas-live")
        return box

    @property
    def widget(self):
        """The VBox to embed in a panel (None unless the mode is "widget")."""
        return self._box

    def display(self) -> "LiveView":
        """Show the widget in the current cell output (nothing to show in other modes)."""
        if self._box is not None and not self._shown:
            from IPython.display import display
            self._shown = True
            display(self._box)
        return self

    def _ipython_display_(self) -> None:
        self._shown = False             # an explicit display always shows it (again)
        self.display()

    # -- feeding -----------------------------------------------------------------------------
    def update(self, event: Event | dict[str, Any]) -> None:
        """Take one event (an Event, or a dict from a remote run's stream)."""
        event = self.state.update(event)
        if self.mode == "widget":
            self._on_widget_event(event)
        elif self.mode == "text":
            self._on_text_event(event)
        if isinstance(event, RunEnded):
            self.close()

    __call__ = update

    def _on_widget_event(self, event: Event) -> None:
        now = self._clock()
        if isinstance(event, Progress) and now < self._next_status:
            return                      # the hot path: state updated, nothing drawn
        if self.auto_display and not self._shown and _shell() is not None:
            self.display()
        if isinstance(event, EpochEnded):
            self._plot_dirty = True
        self._next_status = now + self.min_interval
        self._render_status()
        if self._plot_dirty and now >= self._next_plot and not isinstance(event, RunEnded):
            self._render_plot()         # RunEnded renders in close(), whatever the throttle

    def _on_text_event(self, event: Event) -> None:
        if isinstance(event, EpochEnded):
            print(format_epoch_line(event, epochs=self.state.epochs), flush=True)
        elif isinstance(event, RunEnded):
            print(format_end(self.state), flush=True)

    # -- rendering ---------------------------------------------------------------------------
    def _render_status(self) -> None:
        self.status_renders += 1
        s = self.state
        self._bar.max = max(s.total_steps, 1)
        self._bar.value = min(s.steps_done, self._bar.max)
        self._bar.bar_style = {"completed": "success", "failed": "danger",
                               "stopped": "warning", "interrupted": "warning"}.get(s.status, "")
        self._label.value = _status_html(format_end(s) if s.done else format_bar(s, width=0))

    def _render_plot(self) -> None:
        if not self.state.history:
            return
        start = self._clock()
        png = self.png()
        self.plot_renders += 1
        self.last_png = self._image.value = png
        self._image.layout.display = ""
        self._plot_dirty = False
        # Keep drawing to a fixed share of wall time: a slow draw pushes the next one back. The
        # first draw is not a measure (it loads matplotlib's modules and font cache).
        cost = self._clock() - start if self.plot_renders > 1 else 0.0
        self._next_plot = self._clock() + max(self.min_interval, cost / _PLOT_BUDGET)

    def figure(self):
        """A fresh matplotlib Figure of the learning curves so far."""
        from matplotlib.figure import Figure

        from .plots import plot_history
        # Fixed margins instead of a layout engine: redrawn many times, the solver's extra
        # passes would cost about a third of each draw.
        fig = Figure(figsize=(6.0, 3.4))
        fig.subplots_adjust(left=0.1, right=0.87, bottom=0.15, top=0.89)
        plot_history(self.state, ax=fig.add_subplot())
        return fig

    def png(self) -> bytes:
        """PNG bytes of the learning curves so far."""
        from .plots import figure_png
        return figure_png(self.figure(), dpi=self.dpi)

    def close(self) -> None:
        """Draw the final state and show a static figure of the curves (once)."""
        if self._closed:
            return
        self._closed = True
        if self.mode == "widget":
            self._render_status()
            self._render_plot()
        if self.final_figure and self.mode != "none" and self.state.history and in_kernel():
            self._display_final_figure()
            if self.mode == "widget":
                # The static figure now shows the curves (and survives without widget state);
                # keep one picture on screen, not two.
                self._image.layout.display = "none"

    def _display_final_figure(self) -> None:
        from IPython.display import display
        png = self.last_png if self.mode == "widget" and self.last_png else self.png()
        n = self.state.epochs_run
        # A plain mimebundle, not display(fig): a Figure made without pyplot has no PNG formatter
        # unless the inline backend happens to be active, and would show as text only.
        display({"image/png": png, "text/plain": f"<learning curves: {n} epochs>"}, raw=True)


def _status_html(text: str) -> str:
    return f'<span style="font-family: monospace">{html.escape(text)}</span>'
