"""Gradient descent: optimisers, learning-rate schedules and the learning-rate finder."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..specs import TrainSpec


def make_optimizer(spec: TrainSpec, params) -> torch.optim.Optimizer:
    if spec.optimizer == "sgd":
        return torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay)
    if spec.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay)
    return torch.optim.Adam(params, lr=spec.lr, weight_decay=spec.weight_decay)


@dataclass
class Schedule:
    """A torch LR scheduler and whether it steps after every batch or every epoch."""

    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    per_batch: bool

    def after_batch(self) -> None:
        if self.scheduler is not None and self.per_batch:
            self.scheduler.step()

    def after_epoch(self) -> None:
        if self.scheduler is not None and not self.per_batch:
            self.scheduler.step()

    def state_dict(self) -> dict:
        return self.scheduler.state_dict() if self.scheduler is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if self.scheduler is not None and state:
            self.scheduler.load_state_dict(state)


def make_schedule(spec: TrainSpec, optimizer: torch.optim.Optimizer, steps_per_epoch: int) -> Schedule:
    total = spec.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler
    if spec.schedule == "step":
        # Divide the rate by 10 at a third and two thirds of the run.
        step = max(1, spec.epochs // 3)
        return Schedule(sched.StepLR(optimizer, step_size=step, gamma=0.1), per_batch=False)
    if spec.schedule == "cosine":
        return Schedule(sched.CosineAnnealingLR(optimizer, T_max=total), per_batch=True)
    if spec.schedule == "onecycle":
        return Schedule(sched.OneCycleLR(optimizer, max_lr=spec.lr, total_steps=total), per_batch=True)
    return Schedule(None, per_batch=True)


@dataclass(frozen=True)
class LRFinding:
    lrs: list
    losses: list          # smoothed
    suggestion: float

    def to_dict(self) -> dict:
        return {"lrs": self.lrs, "losses": self.losses, "suggestion": self.suggestion}


def lr_find(model: nn.Module, loss_fn: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: TrainSpec,
            *, start: float = 1e-6, end: float = 1.0, steps: int = 100) -> LRFinding:
    """Leslie Smith's range test: raise the rate exponentially each batch and watch the loss.

    The suggestion is the rate where the smoothed loss falls fastest (steepest negative slope),
    a little before the minimum, where training is quick but still stable.
    """
    g = torch.Generator().manual_seed(spec.seed)
    optimizer = make_optimizer(spec.replace(lr=start), model.parameters())
    factor = (end / start) ** (1 / max(steps - 1, 1))
    lrs, losses, avg, best = [], [], 0.0, math.inf
    model.train()
    for i in range(steps):
        lr = start * factor**i
        for group in optimizer.param_groups:
            group["lr"] = lr
        idx = torch.randint(0, len(x), (spec.batch_size,), generator=g)
        loss = loss_fn(model(x[idx]), y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        value = float(loss.detach())
        if not math.isfinite(value):
            break
        avg = 0.9 * avg + 0.1 * value          # exponential smoothing, bias-corrected below
        smooth = avg / (1 - 0.9 ** (i + 1))
        lrs.append(lr)
        losses.append(smooth)
        best = min(best, smooth)
        if smooth > 4 * best and i > 10:       # diverged: the rest of the curve says nothing
            break
    return LRFinding(lrs, losses, _suggest(lrs, losses))


def _suggest(lrs: list, losses: list) -> float:
    if len(lrs) < 3:
        return lrs[0] if lrs else 1e-3
    logs = [math.log10(lr) for lr in lrs]
    slopes = [(losses[i + 1] - losses[i - 1]) / (logs[i + 1] - logs[i - 1]) for i in range(1, len(lrs) - 1)]
    # Ignore the last few points: just before divergence the slope is noise.
    usable = slopes[: max(1, int(len(slopes) * 0.9))]
    i = min(range(len(usable)), key=usable.__getitem__)
    return float(lrs[i + 1])
