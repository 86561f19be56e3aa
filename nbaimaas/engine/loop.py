"""The training loop, readable top to bottom: ``fit`` is the whole story.

Speed choices (see DESIGN "Speed"): the splits are moved to the device once and batched by
slicing a seeded permutation (no DataLoader for in-memory data); a step never waits for the host
on a GPU (the running loss stays on the device and is read only at progress ticks); checkpoints
are written off the training thread. The step itself, and its GPU fast paths (bf16, channels_last,
a whole-step CUDA graph), live in ``fast.py``.

Several processes (``distributed.py``, under torchrun) run this same ``fit``; a ``Shard`` says which
share of each epoch this process trains on and how the processes agree. The default ``Shard()`` is
one process that trains on everything, and each of its methods is a no-op.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..errors import NonFiniteLossError, SpecError
from ..events import EpochEnded, Progress, RunStarted
from ..specs import TrainSpec, lower_is_better
from .checkpoint import BEST, LAST, cpu_state, load_checkpoint
from .fast import CheckpointWriter, LossMeter, StepRunner
from .metrics import MetricAccumulator, make_loss
from .optim import Schedule, make_optimizer, make_schedule
from .types import Prepared, Split

PROGRESS_EVERY_S = 0.25   # at most four progress events a second: drawing must not slow training
# Between epochs, hand the CPU to whoever waits on EpochEnded (a stop button): ~1 us when no one does.
_yield_cpu = getattr(os, "sched_yield", lambda: time.sleep(0))


class Shard:
    """This process's share of data-parallel training; one process (the default) does it all.

    ``distributed.DistShard`` overrides the methods with collectives: each process trains on an
    equal share (``perm[rank::world]``) of the same seeded permutation, ``batch_size // world``
    samples a step, so ``batch_size`` stays the global batch."""

    rank, world, is_main = 0, 1, True

    def take(self, perm: torch.Tensor) -> torch.Tensor:
        return perm                                     # the samples this process trains on

    def size(self, n: int) -> int:
        return n                                        # len(take(perm)) for n samples

    def batch(self, batch_size: int) -> int:
        return batch_size                               # samples per step in this process

    def wrap(self, model: nn.Module) -> nn.Module:
        return model                                    # the module the steps train (DDP: a wrapper)

    def stop(self, requested: bool) -> bool:
        return requested                                # every process stops at the same step

    def mean(self, value: float) -> float:
        return value                                    # an epoch's loss over all processes

    def from_main(self, fn: Callable, *args):
        return fn(*args)                                # run on the main process, its answer to all


@dataclass
class LoopContext:
    """What one run of ``fit`` needs; the caller owns the model, the run folder and the events."""

    spec: TrainSpec
    data: Prepared
    model: nn.Module
    run_dir: Path
    emit: Callable[..., object]          # emit(EventClass, **fields)
    stop: threading.Event = field(default_factory=threading.Event)
    resume: bool = False
    shard: Shard = field(default_factory=Shard)


@dataclass
class LoopOutcome:
    status: str                          # completed | stopped | failed
    message: str
    history: list
    best_epoch: int
    best_metrics: dict
    best_state: dict | None              # CPU state dict of the best epoch's model
    seconds: float
    device: str


@dataclass
class BestTracker:
    """Remembers the best epoch on the monitored metric and counts epochs without progress."""

    monitor: str
    epoch: int = 0
    value: float = math.nan
    metrics: dict = field(default_factory=dict)
    bad_epochs: int = 0

    def update(self, epoch: int, metrics: dict) -> bool:
        value = metrics[self.monitor]
        better = math.isnan(self.value) or (
            value < self.value if lower_is_better(self.monitor) else value > self.value)
        if better:
            self.epoch, self.value, self.metrics, self.bad_epochs = epoch, value, dict(metrics), 0
        else:
            self.bad_epochs += 1
        return better


def pick_device(wanted: str) -> torch.device:
    if wanted == "cuda" and not torch.cuda.is_available():
        raise SpecError("device 'cuda' was asked for but no CUDA device is available", "use device='auto'")
    if wanted == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(wanted)


def monitored_metric(spec: TrainSpec, data: Prepared) -> str:
    has_val = len(data.val) > 0
    allowed = ["train_loss"] + (["val_loss"] + [f"val_{m}" for m in _task_metrics(data.info.task)]
                                if has_val else [])
    monitor = spec.monitor or ("val_loss" if has_val else "train_loss")
    if monitor not in allowed:
        raise SpecError(f"cannot monitor '{monitor}' for this run; choose one of {', '.join(allowed)}")
    return monitor


def _task_metrics(task: str) -> tuple[str, ...]:
    return ("accuracy", "f1") if task == "classification" else ("mae", "rmse", "r2")


def fit(ctx: LoopContext) -> LoopOutcome:
    spec, data, shard = ctx.spec, ctx.data, ctx.shard
    device = pick_device(spec.device)
    monitor = monitored_metric(spec, data)
    torch.manual_seed(spec.seed)                       # dropout and friends draw from the global RNG
    model = ctx.model.to(device)
    train, val = _to_device(data.train, device), _to_device(data.val, device)
    steps = math.ceil(shard.size(len(train)) / shard.batch(spec.batch_size))
    loss_fn = make_loss(data.info.task, spec.loss)
    optimizer = make_optimizer(spec, model.parameters())
    schedule = make_schedule(spec, optimizer, steps)
    shuffle = torch.Generator().manual_seed(spec.seed)  # its own stream, so resuming replays it
    best, history, best_state = BestTracker(monitor), [], None
    first = 1
    if ctx.resume:
        first, history, best, best_state = _restore(ctx.run_dir, model, optimizer, schedule, shuffle, best)
    ctx.emit(RunStarted, spec=spec.to_dict(), epochs=spec.epochs, steps_per_epoch=steps,
             device=str(device), resumed_from_epoch=first - 1)
    runner = StepRunner(model, loss_fn, optimizer, train, spec, device, use_graph=shard.world == 1)
    runner.model = shard.wrap(runner.model)             # after StepRunner's channels_last, as DDP wants
    writer = CheckpointWriter(ctx.emit)
    started, status, message = time.perf_counter(), "completed", ""
    try:
        for epoch in range(first, spec.epochs + 1):
            t0 = time.perf_counter()
            train_loss, stopped = _train_epoch(ctx, runner, train, schedule, shuffle, epoch, steps)
            if stopped:
                status, message = "stopped", f"stopped by request during epoch {epoch}"
                break
            metrics = {"train_loss": train_loss,
                       **shard.from_main(evaluate_split, model, val, loss_fn, data, "val_")}
            improved = best.update(epoch, metrics)
            if improved:
                best_state = _weights(model)
            history.append({"epoch": epoch, "lr": _lr(optimizer), **metrics})
            schedule.after_epoch()
            if shard.is_main:
                _checkpoint(writer, ctx.run_dir, epoch, model, optimizer, schedule, shuffle, history, best,
                            improved)
            ctx.emit(EpochEnded, epoch=epoch, metrics=metrics, lr=history[-1]["lr"],
                     seconds=time.perf_counter() - t0, best=improved)
            _yield_cpu()
            if spec.early_stop and best.bad_epochs >= spec.early_stop:
                message = f"early stop: no better {monitor} for {spec.early_stop} epochs"
                break
    finally:
        writer.close()                                 # every checkpoint is on disk before we return
    message = "; ".join([message] * bool(message) + runner.notices)
    return LoopOutcome(status, message, history, best.epoch, best.metrics, best_state,
                       time.perf_counter() - started, str(device))


def _train_epoch(ctx, runner: StepRunner, train: Split, schedule: Schedule, shuffle, epoch, steps):
    """One pass over this process's share of the shuffled training split.

    Returns (mean loss over all processes, stopped by request)."""
    shard = ctx.shard
    bs = shard.batch(ctx.spec.batch_size)
    runner.model.train()
    perm = shard.take(torch.randperm(len(train), generator=shuffle)).to(train.x.device)
    meter = LossMeter(train.x.device, len(perm), bs)    # per-step losses, read back at ticks
    last_tick, t0 = time.monotonic(), time.perf_counter()
    for step in range(1, steps + 1):
        if shard.stop(ctx.stop.is_set()):
            return math.nan, True
        idx = perm[(step - 1) * bs: step * bs]
        meter.add(step, runner.step(idx), len(idx))
        schedule.after_batch()
        now = time.monotonic()
        tick = now - last_tick >= PROGRESS_EVERY_S or step == steps
        if tick or meter.bad_step:                      # on the CPU a NaN is seen at its own step
            _check_finite(meter, epoch, step)
        if tick:
            last_tick = now
            ctx.emit(Progress, epoch=epoch, step=step, steps=steps, loss=meter.mean(step),
                     samples_per_s=meter.seen * shard.world / max(time.perf_counter() - t0, 1e-9))
    return shard.mean(meter.mean(steps)), False


def _check_finite(meter: LossMeter, epoch: int, step: int) -> None:
    bad = meter.first_nonfinite(step)
    if bad is not None:
        raise NonFiniteLossError(f"loss became NaN at epoch {epoch}, step {bad}",
                                 "lower the learning rate or set grad_clip; the last good checkpoint was kept")


@torch.no_grad()
def evaluate_split(model: nn.Module, split: Split, loss_fn, data: Prepared, prefix: str,
                   batch_size: int = 1024) -> dict:
    """Loss and task metrics over a split, in data units for regression and forecasts."""
    if len(split) == 0:
        return {}
    model.eval()
    acc = MetricAccumulator(data.info.task, data.info.n_outputs, split.x.device)
    for i in range(0, len(split), batch_size):
        xb, yb = split.x[i:i + batch_size], split.y[i:i + batch_size]
        out = model(xb)
        acc.add(out, yb, loss_fn(out, yb))
    inverse = getattr(data.preprocessor, "inverse_targets", None)
    return acc.compute(prefix, inverse if data.info.task != "classification" else None)


def _weights(model: nn.Module) -> dict:
    # Contiguous: channels_last conv weights (the CUDA fast path) cannot go into safetensors as is.
    return {k: v.contiguous() for k, v in cpu_state(model).items()}


def _to_device(split: Split, device: torch.device) -> Split:
    return Split(split.x.to(device), split.y.to(device))


def _lr(optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])


def _checkpoint(writer: CheckpointWriter, run_dir: Path, epoch, model, optimizer, schedule, shuffle,
                history, best, improved) -> None:
    """Hand CPU copies of everything a resume needs to the writer; the disk work is off-thread."""
    state = {
        "epoch": epoch,
        "model": cpu_state(model),
        "optimizer": cpu_state(optimizer),
        "schedule": schedule.state_dict(),
        "shuffle_rng": shuffle.get_state(),
        "torch_rng": torch.get_rng_state(),
        "history": list(history),
        "best": {"epoch": best.epoch, "value": best.value, "metrics": best.metrics, "bad": best.bad_epochs},
    }
    writer.submit(run_dir / LAST, state, epoch, "last")
    if improved:
        writer.submit(run_dir / BEST, {"epoch": epoch, "model": state["model"], "metrics": best.metrics},
                      epoch, "best")


def _restore(run_dir: Path, model, optimizer, schedule, shuffle, best: BestTracker):
    """Load ``last.pt`` so the next epoch starts exactly as it would have without the break."""
    state = load_checkpoint(run_dir / LAST)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    shuffle.set_state(state["shuffle_rng"])
    torch.set_rng_state(state["torch_rng"])
    b = state["best"]
    best.epoch, best.value, best.metrics, best.bad_epochs = b["epoch"], b["value"], b["metrics"], b["bad"]
    best_state = load_checkpoint(run_dir / BEST)["model"] if (run_dir / BEST).exists() else None
    return state["epoch"] + 1, list(state["history"]), best, best_state
