"""Runs: a training job in a background thread, its numbered events, and its outcome.

The same ``Run`` interface (``id``, ``status``, ``events(after=n)``, ``wait()``, ``result()``,
``stop()``) is what the service's remote runs offer, so the notebook renders both alike.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import NbaimaasError, OutOfMemoryError, TrainingError
from ..events import Event, RunEnded
from ..results import TrainResult
from ..specs import TrainSpec
from .loop import LoopContext, LoopOutcome, fit, monitored_metric
from .registry import Registry
from .store import atomic_write_json
from .types import Prepared


def new_run_id() -> str:
    return time.strftime("run-%Y%m%d-%H%M%S-") + secrets.token_hex(3)


class EventLog:
    """Append-only, numbered events of one run, with a condition for waiting readers."""

    def __init__(self, run_id: str, on_event: Callable[[Event], None] | None = None):
        self.run_id = run_id
        self._events: list[Event] = []
        self._cond = threading.Condition()
        self._on_event = on_event

    def emit(self, cls: type[Event], **fields) -> Event:
        with self._cond:
            event = cls(run_id=self.run_id, seq=len(self._events), **fields)
            self._events.append(event)
            self._cond.notify_all()
        if self._on_event is not None:
            self._on_event(event)
        return event

    def after(self, seq: int = -1, timeout: float | None = 0) -> list[Event]:
        """Events numbered above ``seq``; waits up to ``timeout`` seconds for one to arrive."""
        with self._cond:
            if timeout and len(self._events) <= seq + 1:
                self._cond.wait(timeout)
            return self._events[seq + 1:]


@dataclass
class Job:
    """A prepared training job: everything is validated before the thread starts."""

    spec: TrainSpec
    data: Prepared
    model: nn.Module
    run_dir: Path
    registry: Registry
    resume: bool = False


class LocalRun:
    """A training run in a daemon thread of this process."""

    def __init__(self, job: Job, run_id: str, on_finished: Callable[["LocalRun"], None] | None = None):
        self.id = run_id
        self.job = job
        self.log = EventLog(run_id)
        self._stop = threading.Event()
        self._done = threading.Event()
        self._result: TrainResult | None = None
        self._error: BaseException | None = None
        self._on_finished = on_finished
        self.status = "pending"
        job.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(job.run_dir / "spec.json", job.spec.to_dict())
        self._thread = threading.Thread(target=self._main, name=f"nbaimaas-{run_id}", daemon=True)

    def start(self) -> "LocalRun":
        self.status = "running"
        self._thread.start()
        return self

    # -- the Run interface ------------------------------------------------------------------
    def events(self, after: int = -1, timeout: float | None = 0) -> list[Event]:
        return self.log.after(after, timeout)

    def stop(self) -> None:
        """Ask the run to stop at the next batch boundary; the best checkpoint is kept."""
        self._stop.set()

    def wait(self, timeout: float | None = None) -> TrainResult:
        if not self._done.wait(timeout):
            raise TimeoutError(f"run {self.id} still {self.status} after {timeout} s")
        return self.result()

    def result(self) -> TrainResult:
        if not self._done.is_set():
            raise TrainingError(f"run {self.id} is still {self.status}", "wait() for it or stop() it first")
        if self._error is not None:
            raise self._error
        return self._result

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def __repr__(self) -> str:
        return f"<Run {self.id} {self.status}>"

    # -- the thread -------------------------------------------------------------------------
    def _context(self) -> LoopContext:
        job = self.job
        return LoopContext(job.spec, job.data, job.model, job.run_dir, self.log.emit, self._stop, job.resume)

    def _failure(self, exc: BaseException) -> BaseException:
        """The error this run reports for ``exc`` (an override point, as ``_context`` is)."""
        return _as_training_error(exc)

    def _main(self) -> None:
        self.status = "running"
        try:
            self._result = self._finish(fit(self._context()))
        except BaseException as exc:  # noqa: BLE001 - every failure must end the run visibly
            self._error = self._failure(exc)
            self.status = "failed"
            self.log.emit(RunEnded, status="failed", message=str(self._error))
        finally:
            self._done.set()
            if self._on_finished is not None:
                self._on_finished(self)

    def _finish(self, out: LoopOutcome) -> TrainResult:
        job, ref, message = self.job, None, out.message
        if out.best_state is not None:
            job.model.load_state_dict(out.best_state)   # the run's answer is its best epoch
            if job.spec.name:
                ref = str(register_model(job, out.best_state, out.best_metrics))
        elif out.status == "stopped":
            message += "; no epoch finished, so nothing was kept"
        if out.status == "stopped" and out.best_state is not None:
            message += f"; kept the best checkpoint (epoch {out.best_epoch}) in {job.run_dir}"
        self.status = out.status
        result = TrainResult(self.id, out.status, out.best_metrics, out.history, ref, out.best_epoch,
                             len(out.history), str(job.run_dir), message, out.seconds, out.device,
                             job.spec.to_dict())
        self.log.emit(RunEnded, status=out.status, metrics=out.best_metrics, model=ref, message=message)
        return result


def register_model(job: Job, weights: dict, metrics: dict):
    meta, tensors = job.data.preprocessor.state()
    monitor = monitored_metric(job.spec, job.data)
    return job.registry.register(
        job.spec.name, weights=weights, spec=job.spec.to_dict(), info=job.data.info.to_dict(),
        preprocess_meta=meta, preprocess_tensors=tensors, metrics={**metrics, "monitor": monitor})


def _as_training_error(exc: BaseException) -> BaseException:
    if isinstance(exc, NbaimaasError):
        return exc
    oom = getattr(torch, "OutOfMemoryError", ())
    if (oom and isinstance(exc, oom)) or "out of memory" in str(exc).lower():
        return OutOfMemoryError("the device ran out of memory during training",
                                "try a smaller batch_size or a smaller model")
    return exc

