"""RunProgress counts, the format_* functions word it, LiveView shows it (text and widget)."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from nbaimaas.events import Checkpointed, EpochEnded, Progress, RunEnded, RunStarted
from nbaimaas.notebook import live as live_mod
from nbaimaas.notebook.live import LiveView, resolve_mode
from nbaimaas.notebook.progress import (
    RunProgress, format_bar, format_duration, format_end, format_epoch_line, format_rate, main_metric,
)

EPOCH_LINES = [
    "epoch 1/3  train_loss 1.0000  val_loss 1.2000  val_accuracy 0.7000",
    "epoch 2/3  train_loss 0.5000  val_loss 0.6000  val_accuracy 0.8500",
    "epoch 3/3  train_loss 0.3333  val_loss 0.6500  val_accuracy 0.9000",
]
END_LINE = "completed after 3 epochs; best epoch 2: val_accuracy 0.8500; model digits-cnn:1"


def run_events(epochs=3, steps=4, end=True, status="completed", model="digits-cnn:1", message=""):
    """A synthetic run: each step takes 0.5 s of event time; epoch 2 is the best on val_loss."""
    t, seq = 1000.0, 0
    val_loss = {1: 1.2, 2: 0.6, 3: 0.65}

    def make(cls, **kw):
        nonlocal seq
        seq += 1
        return cls(run_id="run-1", seq=seq - 1, time=t, **kw)

    out = [make(RunStarted, epochs=epochs, steps_per_epoch=steps)]
    for e in range(1, epochs + 1):
        for s in range(1, steps + 1):
            t += 0.5
            out.append(make(Progress, epoch=e, step=s, steps=steps, loss=1 / (e * s), samples_per_s=1234.0))
        metrics = {"val_accuracy": 1 - 0.3 / e, "val_loss": val_loss.get(e, 1.0), "train_loss": 1 / e}
        out.append(make(EpochEnded, epoch=e, metrics=metrics, lr=0.01, seconds=2.0, best=e == 2))
        out.append(make(Checkpointed, epoch=e, which="last", path="/tmp/x"))
    if end:
        out.append(make(RunEnded, status=status, model=model, message=message))
    return out


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


# -- RunProgress and formatting -------------------------------------------------------------------
def test_progress_percent_eta_and_bar():
    events = run_events()
    state = RunProgress()
    for e in events[:7]:                 # RunStarted, 4 steps of epoch 1, EpochEnded, Checkpointed
        state.update(e)
    state.update(events[7])              # epoch 2, step 1: 5 of 12 steps in 2.5 s
    assert (state.epoch, state.step, state.steps_done, state.total_steps) == (2, 1, 5, 12)
    assert state.fraction == pytest.approx(5 / 12)
    assert state.elapsed == pytest.approx(2.5)
    assert state.eta == pytest.approx(3.5)           # 7 steps left at 0.5 s each
    assert format_bar(state, width=12) == "epoch 2/3 [#####.......] 41% loss 0.5000 · 1.2k samples/s · ETA 4s"
    assert format_bar(state, width=0) == "epoch 2/3 41% loss 0.5000 · 1.2k samples/s · ETA 4s"


def test_progress_history_best_and_end():
    state = RunProgress()
    for e in run_events():
        state.update(e)
    assert state.status == "completed" and state.done
    assert [h["epoch"] for h in state.history] == [1, 2, 3]
    assert state.history[0] == {"epoch": 1, "lr": 0.01, "val_accuracy": 0.7, "val_loss": 1.2, "train_loss": 1.0}
    assert state.best_epoch == 2 and state.fraction == 1.0 and state.eta == 0.0
    assert format_end(state) == END_LINE
    assert format_bar(state, width=4) == "epoch 3/3 [####] 100% loss 0.0833 · 1.2k samples/s"


def test_epoch_line_is_deterministic():
    ended = [e for e in run_events() if isinstance(e, EpochEnded)]
    assert [format_epoch_line(e, epochs=3) for e in ended] == EPOCH_LINES
    assert format_epoch_line(ended[0].to_dict()) == EPOCH_LINES[0].replace("1/3", "1")
    assert format_epoch_line(ended[0], epochs=3, with_time=True).endswith("  lr 0.01  2.00s")


def test_end_line_for_stopped_and_early_ended_runs():
    state = RunProgress()
    for e in run_events(epochs=3, end=False)[:13]:     # two epochs done
        state.update(e)
    state.update(RunEnded(run_id="run-1", seq=99, status="stopped", message="stopped by request"))
    assert format_end(state) == "stopped after 2 epochs (stopped by request); best epoch 2: val_accuracy 0.8500"
    assert state.steps_done == 8                       # a stopped run is not counted as all done
    empty = RunProgress()
    empty.update(RunEnded(run_id="r", seq=0, status="failed", message="loss became NaN"))
    assert format_end(empty) == "failed after 0 epochs (loss became NaN)"


def test_attach_mid_run_counts_from_first_seen_event():
    state = RunProgress(epochs=3)
    for e in run_events()[7:10]:                       # epoch 2, steps 1-3: no RunStarted seen
        state.update(e.to_dict())
    assert state.total_steps == 12 and state.steps_done == 7
    assert state.eta == pytest.approx(5 * 1.0 / 2)     # 2 steps seen in 1 s -> 0.5 s per step


def test_small_formatters():
    assert [format_duration(s) for s in (4.4, 65, 3720)] == ["4s", "1m05s", "1h02m"]
    assert [format_rate(r) for r in (850, 1234, 3.4e6)] == ["850", "1.2k", "3.4M"]
    assert main_metric(["train_loss", "val_loss", "val_rmse", "val_mae"]) == "val_mae"
    assert main_metric(["train_loss", "val_loss"]) is None
    assert format_bar(RunProgress()) == "epoch 0"


# -- LiveView: modes ------------------------------------------------------------------------------
def test_mode_resolution(monkeypatch):
    monkeypatch.delenv("NBAIMAAS_PROGRESS", raising=False)
    assert resolve_mode("auto") == "text"              # not inside a kernel
    monkeypatch.setenv("NBAIMAAS_PROGRESS", "none")
    assert resolve_mode("auto") == "none"
    assert resolve_mode("text") == "text"              # an explicit mode wins over the env var
    monkeypatch.setenv("NBAIMAAS_PROGRESS", "fancy")
    with pytest.raises(ValueError, match="NBAIMAAS_PROGRESS"):
        resolve_mode("auto")
    with pytest.raises(ValueError, match="unknown progress mode"):
        resolve_mode("bars")


def test_text_mode_prints_epoch_and_end_lines(capsys):
    view = LiveView(mode="text")
    for e in run_events():
        view(e)
    assert capsys.readouterr().out.splitlines() == EPOCH_LINES + [END_LINE]
    assert view.widget is None


def test_none_mode_prints_nothing_but_keeps_state(capsys):
    view = LiveView(mode="none")
    for e in run_events():
        view.update(e)
    assert capsys.readouterr().out == "" and view.state.best_epoch == 2


# -- LiveView: widgets ----------------------------------------------------------------------------
def test_widget_mode_reaches_max_and_shows_end_line():
    pytest.importorskip("ipywidgets")
    clock = FakeClock()
    view = LiveView(mode="widget", clock=clock, auto_display=False)
    bar, label, image = view.widget.children
    assert bar._dom_classes == ("nbaimaas-progress",)
    assert label._dom_classes == ("nbaimaas-status",)
    assert image._dom_classes == ("nbaimaas-live-plot",)
    pngs = []
    for e in run_events():
        clock.t += 1.0                                 # every event lands in a new window
        view(e)
        if isinstance(e, EpochEnded):
            pngs.append(bytes(image.value))   # the widget keeps a memoryview
    assert bar.value == bar.max == 12 and bar.bar_style == "success"
    assert END_LINE in label.value
    assert all(p.startswith(b"\x89PNG") for p in pngs)
    assert len(set(pngs)) == 3                         # the plot changed after every epoch
    assert view.last_png == bytes(image.value) and view.last_png.startswith(b"\x89PNG")


def test_widget_throttle_skips_work_between_windows():
    pytest.importorskip("ipywidgets")
    clock = FakeClock()
    view = LiveView(mode="widget", clock=clock, auto_display=False)
    view(RunStarted(run_id="r", seq=0, epochs=1, steps_per_epoch=1000))
    ticks = [Progress(run_id="r", seq=i, epoch=1, step=i, steps=1000, loss=0.5) for i in range(1, 1001)]
    for i, tick in enumerate(ticks):
        clock.t = i / 1000                             # 1,000 ticks in one second
        view(tick)
    assert view.status_renders == 1 + 3                # RunStarted, then at t=0.25, 0.5 and 0.75
    assert view.state.step == 1000                     # ... while the state saw every tick
    assert view.widget.children[0].value == 751        # as drawn at the last window (t=0.75)


def test_widget_throttle_with_real_clock():
    pytest.importorskip("ipywidgets")
    view = LiveView(mode="widget", min_interval=0.25, auto_display=False)
    view(RunStarted(run_id="r", seq=0, epochs=1, steps_per_epoch=1000))
    for i in range(1, 1001):
        view(Progress(run_id="r", seq=i, epoch=1, step=i, steps=1000, loss=0.5))
    assert view.status_renders <= 3                    # 1,000 fast ticks: one or two redraws
    assert view.plot_renders == 0                      # no epoch ended, nothing to plot


def test_widget_plot_waits_for_its_window_then_catches_up():
    pytest.importorskip("ipywidgets")
    clock = FakeClock()
    view = LiveView(mode="widget", clock=clock, auto_display=False, min_interval=1.0)
    events = run_events()
    for e in events[:13]:                              # two epochs end within one window
        view(e)
    assert view.plot_renders == 1
    clock.t = 5.0
    view(events[13])                                   # a tick after the window redraws the plot
    assert view.plot_renders == 2 and len(view.state.history) == 2


def test_widget_mode_takes_dict_events():
    pytest.importorskip("ipywidgets")
    clock = FakeClock()
    view = LiveView(mode="widget", clock=clock, auto_display=False)
    for e in run_events():
        clock.t += 1.0
        view(e.to_dict())
    assert view.state.status == "completed" and END_LINE in view.widget.children[1].value
    assert view.last_png.startswith(b"\x89PNG")


def test_final_figure_displayed_once_in_a_kernel(monkeypatch, capsys):
    shown = []
    monkeypatch.setattr(live_mod, "in_kernel", lambda: True)
    monkeypatch.setattr("IPython.display.display", lambda obj, raw=False: shown.append(obj))
    view = LiveView(mode="text")
    for e in run_events():
        view(e)
    view.close()                                       # a second close shows nothing new
    assert len(shown) == 1
    assert shown[0]["image/png"].startswith(b"\x89PNG")
    assert shown[0]["text/plain"] == "<learning curves: 3 epochs>"
    assert capsys.readouterr().out.splitlines()[-1] == END_LINE


def test_close_without_end_draws_the_state():
    pytest.importorskip("ipywidgets")
    view = LiveView(mode="widget", auto_display=False, final_figure=False)
    for e in run_events(end=False)[:7]:
        view(e)
    view.close()
    assert view.last_png.startswith(b"\x89PNG") and "epoch 1/3" in view.widget.children[1].value


def test_no_torch_in_the_notebook_layer():
    code = ("import sys, nbaimaas.notebook.plots, nbaimaas.notebook.live, nbaimaas.notebook.progress; "
            "bad = [m for m in sys.modules if m == 'torch' or m.startswith(('torch.', 'nbaimaas.engine'))]; "
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_eta_unknown_without_plan():
    state = RunProgress()
    state.update(Progress(run_id="r", seq=0, time=1.0, epoch=1, step=1, steps=10, loss=math.nan))
    assert state.eta is None and format_bar(state) == "epoch 1"


def test_widget_view_hands_the_curves_to_the_static_figure_at_the_end(monkeypatch):
    shown = []
    monkeypatch.setattr(live_mod, "in_kernel", lambda: True)
    monkeypatch.setattr("IPython.display.display", lambda obj, raw=False: shown.append(obj))
    view = LiveView(mode="widget", auto_display=False)
    for e in run_events():
        view(e)
    assert len(shown) == 1 and shown[0]["image/png"] == view.last_png   # the same picture, once
    plot = next(c for c in view.widget.children if "nbaimaas-live-plot" in c._dom_classes)
    assert plot.layout.display == "none"
