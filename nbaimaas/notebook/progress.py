"""Counting and formatting a run's progress, apart from any display (the tqdm split).

``RunProgress`` is pure state fed with events; the ``format_*`` functions turn it (or one event)
into text. Nothing here imports IPython, ipywidgets or matplotlib, so the same state drives the
widget view, the text view, the CLI and tests. Timings come from the events' own ``time`` stamps,
not the local clock, so replaying a finished remote run gives the same numbers it had live.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..events import EpochEnded, Event, Progress, RunEnded, RunStarted, event_from_dict

__all__ = [
    "RunProgress", "main_metric", "format_bar", "format_epoch_line", "format_end",
    "format_duration", "format_rate",
]

#: Metrics worth a headline, best first; the first one a run reports is "the" metric.
_HEADLINE = ("val_accuracy", "val_mae", "val_rmse", "val_f1", "val_r2")


def main_metric(names: Iterable[str]) -> str | None:
    """The metric to show next to the losses: val_accuracy for classification, else val_mae/rmse."""
    names = list(names)
    for name in _HEADLINE:
        if name in names:
            return name
    others = sorted(n for n in names if n.startswith("val_") and not n.endswith("loss"))
    return others[0] if others else None


@dataclass
class RunProgress:
    """Where a run stands, from the events seen so far. ``update`` is cheap: a few assignments."""

    epochs: int = 0                    # planned epochs (0: unknown)
    steps_per_epoch: int = 0
    run_id: str = ""
    epoch: int = 0                     # the epoch in progress (1-based), or the last one ended
    step: int = 0                      # steps done in ``epoch``
    loss: float = math.nan             # running mean loss of the epoch in progress
    samples_per_s: float = 0.0
    status: str = "pending"
    message: str = ""
    model: str | None = None
    device: str = ""
    history: list = field(default_factory=list)   # one dict per epoch, shaped like TrainResult.history
    best_epoch: int = 0
    final_metrics: dict = field(default_factory=dict)
    started_at: float | None = None    # event time of the first event seen
    last_at: float | None = None       # event time of the latest event
    _start_steps: int = 0              # steps already done when we started watching (resume/attach)

    # -- feeding ----------------------------------------------------------------------------
    def update(self, event: Event | dict[str, Any]) -> Event:
        """Take one event (an Event or its ``to_dict``); returns the Event."""
        if isinstance(event, dict):
            event = event_from_dict(event)
        if self.started_at is None:
            self.started_at = event.time
            self.run_id = event.run_id
        self.last_at = event.time
        if isinstance(event, Progress):
            self._on_progress(event)
        elif isinstance(event, EpochEnded):
            self._on_epoch(event)
        elif isinstance(event, RunStarted):
            self._on_start(event)
        elif isinstance(event, RunEnded):
            self._on_end(event)
        return event                   # Checkpointed changes nothing we show

    def _on_start(self, e: RunStarted) -> None:
        self.epochs = e.epochs or self.epochs
        self.steps_per_epoch = e.steps_per_epoch or self.steps_per_epoch
        self.device, self.status = e.device, "running"
        done = e.resumed_from_epoch      # epochs finished before this start (resume)
        self.epoch, self.step = done, (self.steps_per_epoch if done else 0)
        self._start_steps = e.resumed_from_epoch * self.steps_per_epoch

    def _on_progress(self, e: Progress) -> None:
        if self.status == "pending":   # attached mid-run: count only what we saw happen
            self.status = "running"
            self._start_steps = (e.epoch - 1) * e.steps + e.step
        self.epoch, self.step, self.loss = e.epoch, e.step, e.loss
        self.samples_per_s = e.samples_per_s
        self.steps_per_epoch = e.steps or self.steps_per_epoch

    def _on_epoch(self, e: EpochEnded) -> None:
        self.epoch, self.step = e.epoch, self.steps_per_epoch
        self.history.append({"epoch": e.epoch, "lr": e.lr, **e.metrics})
        if e.best:
            self.best_epoch = e.epoch

    def _on_end(self, e: RunEnded) -> None:
        self.status, self.message, self.model = e.status, e.message, e.model
        self.final_metrics = dict(e.metrics)

    # -- derived ----------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.status not in ("pending", "running")

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    @property
    def steps_done(self) -> int:
        """Steps done over the whole run; a completed run (early stop too) counts as all done."""
        if self.status == "completed" and self.total_steps:
            return self.total_steps
        return max(self.epoch - 1, 0) * self.steps_per_epoch + self.step if self.epoch else 0

    @property
    def fraction(self) -> float | None:
        if not self.total_steps:
            return None
        return min(self.steps_done / self.total_steps, 1.0)

    @property
    def elapsed(self) -> float:
        if self.started_at is None or self.last_at is None:
            return 0.0
        return max(self.last_at - self.started_at, 0.0)

    @property
    def eta(self) -> float | None:
        """Seconds left at the rate seen so far; None until there is a rate to go by."""
        if self.done:
            return 0.0
        seen = self.steps_done - self._start_steps
        if not self.total_steps or seen <= 0 or self.elapsed <= 0:
            return None
        return (self.total_steps - self.steps_done) * self.elapsed / seen

    @property
    def epochs_run(self) -> int:
        return self.history[-1]["epoch"] if self.history else 0


# -- formatting ---------------------------------------------------------------------------------
def format_duration(seconds: float) -> str:
    """``4s``, ``1m05s``, ``2h03m``: short enough for a status line."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def format_rate(per_s: float) -> str:
    """``850``, ``1.2k``, ``3.4M``."""
    for limit, suffix in ((1e6, "M"), (1e3, "k")):
        if per_s >= limit:
            return f"{per_s / limit:.1f}{suffix}"
    return f"{per_s:.0f}"


def _value(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)


def _metric_order(name: str) -> tuple[bool, str]:
    # Losses first (train before val, alphabetically), then the other metrics by name.
    return (not name.endswith("loss"), name)


def _epoch_label(epoch: int, epochs: int) -> str:
    return f"epoch {epoch}/{epochs}" if epochs else f"epoch {epoch}"


def format_bar(state: RunProgress, width: int = 30) -> str:
    """One status line: ``epoch 3/10 [#########.....] 25% loss 0.4123 · 1.2k samples/s · ETA 4s``.

    The bar and percentage are for the whole run; ``width=0`` leaves the bar out (for views that
    draw their own). Parts that are not known yet are left out rather than shown as zeros.
    """
    parts = [_epoch_label(state.epoch, state.epochs)]
    frac = state.fraction
    if frac is not None:
        filled = int(frac * width)
        bar = f"[{'#' * filled}{'.' * (width - filled)}] " if width > 0 else ""
        parts[0] += f" {bar}{int(frac * 100)}%"
    details = []
    if not math.isnan(state.loss):
        parts.append(f"loss {state.loss:.4f}")
    if state.samples_per_s > 0:
        details.append(f"{format_rate(state.samples_per_s)} samples/s")
    eta = state.eta
    if eta is not None and not state.done:
        details.append(f"ETA {format_duration(eta)}")
    return " · ".join(filter(None, [" ".join(parts)] + details))


def format_epoch_line(event: EpochEnded | dict, epochs: int = 0, with_time: bool = False) -> str:
    """``epoch 3/10  train_loss 0.4123  val_loss 0.3871  val_accuracy 0.9112``.

    Deterministic (fixed 4 decimals, a fixed metric order, no timings unless ``with_time``), so a
    notebook that prints it can be compared by nbval.
    """
    if isinstance(event, dict):
        event = event_from_dict(event)  # type: ignore[assignment]
    fields = [_epoch_label(event.epoch, epochs)]
    fields += [f"{k} {_value(event.metrics[k])}" for k in sorted(event.metrics, key=_metric_order)]
    if with_time:
        fields.append(f"lr {event.lr:.3g}  {event.seconds:.2f}s")
    return "  ".join(fields)


def _headline(state: RunProgress) -> str:
    """``best epoch 8: val_accuracy 0.9630``, or '' when no epoch has ended."""
    if not state.history:
        return ""
    by_epoch = {h["epoch"]: h for h in state.history}
    best = by_epoch.get(state.best_epoch) or state.history[-1]
    name = main_metric(best) or ("val_loss" if "val_loss" in best else "train_loss")
    if name not in best:
        return f"best epoch {best['epoch']}"
    return f"best epoch {best['epoch']}: {name} {_value(best[name])}"


def format_end(state: RunProgress) -> str:
    """``completed after 10 epochs; best epoch 8: val_accuracy 0.9630; model digits-cnn:1``."""
    n = state.epochs_run
    head = f"{state.status} after {n} epoch{'' if n == 1 else 's'}"
    if state.message:
        head += f" ({state.message})"
    parts = [head, _headline(state)]
    if state.model:
        parts.append(f"model {state.model}")
    return "; ".join(p for p in parts if p)
