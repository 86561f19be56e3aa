"""Events a run emits: small, JSON-serialisable, numbered per run.

Training only *emits* these; live views, the service's event log and the HTTP stream only
*observe* them. Nothing that receives an event can change the run (callbacks inside the engine
do that). ``seq`` numbers events of one run from 0 so a client can resume a stream with
``events(after=seq)``.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Event", "RunStarted", "Progress", "EpochEnded", "Checkpointed", "RunEnded",
    "event_from_dict", "RUN_STATUSES",
]

#: What a run can be. "interrupted" is set by a service that restarted under a running job.
RUN_STATUSES = ("pending", "running", "completed", "stopped", "failed", "interrupted")


@dataclass(frozen=True)
class Event:
    run_id: str
    seq: int
    time: float = field(default_factory=time.time)

    @property
    def kind(self) -> str:
        return type(self).__name__

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class RunStarted(Event):
    spec: dict = field(default_factory=dict)
    epochs: int = 0
    steps_per_epoch: int = 0
    device: str = "cpu"
    resumed_from_epoch: int = 0


@dataclass(frozen=True)
class Progress(Event):
    """A throttled tick inside an epoch; ``loss`` is the running mean of the epoch so far."""

    epoch: int = 0                     # 1-based
    step: int = 0                      # steps done in this epoch
    steps: int = 0                     # steps per epoch
    loss: float = float("nan")
    samples_per_s: float = 0.0


@dataclass(frozen=True)
class EpochEnded(Event):
    epoch: int = 0
    metrics: dict = field(default_factory=dict)   # train_loss, val_loss, val_accuracy, ...
    lr: float = 0.0
    seconds: float = 0.0
    best: bool = False                 # this epoch is the best so far on the monitored metric


@dataclass(frozen=True)
class Checkpointed(Event):
    epoch: int = 0
    which: str = "last"                # "last" or "best"
    path: str = ""


@dataclass(frozen=True)
class RunEnded(Event):
    status: str = "completed"
    metrics: dict = field(default_factory=dict)
    model: str | None = None           # registry reference when the run registered a model
    message: str = ""                  # why it stopped or failed, one line


_KINDS = {cls.__name__: cls for cls in (RunStarted, Progress, EpochEnded, Checkpointed, RunEnded)}


def event_from_dict(data: dict[str, Any]) -> Event:
    data = dict(data)
    cls = _KINDS[data.pop("kind")]
    return cls(**data)
