"""The training loop and run lifecycle: events, stop, resume, NaN, early stop, schedules."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import nbaimaas as ai
from nbaimaas.engine.checkpoint import BEST, LAST, load_checkpoint
from nbaimaas.errors import NonFiniteLossError
from nbaimaas.events import Checkpointed, EpochEnded, Progress, RunEnded, RunStarted

FAST = dict(data="digits", model="mlp", limit=400, batch_size=32)


def test_train_returns_history_metrics_and_events():
    events = []
    r = ai.train(**FAST, epochs=3, progress=events.append)
    assert r.status == "completed" and r.epochs_run == 3
    assert [h["epoch"] for h in r.history] == [1, 2, 3]
    assert {"train_loss", "val_loss", "val_accuracy", "val_f1", "lr"} <= set(r.history[0])
    assert r.metrics == {k: v for k, v in r.history[r.best_epoch - 1].items() if k not in ("epoch", "lr")}
    kinds = [type(e) for e in events]
    assert kinds[0] is RunStarted and kinds[-1] is RunEnded
    assert [e.seq for e in events] == list(range(len(events)))
    assert kinds.count(EpochEnded) == 3 and Progress in kinds and Checkpointed in kinds
    assert r.model is None                       # no name: nothing registered


def test_val_loss_falls_while_training():
    r = ai.train(**FAST, epochs=5, lr=3e-3)
    assert r.history[-1]["val_loss"] < r.history[0]["val_loss"]
    assert r.metrics["val_accuracy"] > 0.8


def test_named_run_registers_best_epoch():
    r = ai.train(**FAST, epochs=2, name="tiny")
    assert r.model == "tiny:1"
    v = ai.model("tiny@best")
    assert v.version == 1 and v.metrics["val_accuracy"] == pytest.approx(r.metrics["val_accuracy"])


def _stop_after_epoch(run, epoch):
    seen = -1
    while not run.done:
        for e in run.events(seen, timeout=0.05):
            seen = e.seq
            if isinstance(e, EpochEnded) and e.epoch == epoch:
                run.stop()
    return run


def test_stop_at_batch_boundary_keeps_best_checkpoint():
    run = ai.start_training(**FAST, epochs=50, name="stopped")
    _stop_after_epoch(run, 2)
    r = run.result()
    assert r.status == "stopped" and run.status == "stopped"
    assert 2 <= r.epochs_run < 50
    assert "kept the best checkpoint" in r.message
    best = load_checkpoint(__import__("pathlib").Path(r.checkpoint) / BEST)
    assert best["epoch"] == r.best_epoch
    assert r.model == "stopped:1"               # what was kept is usable at once


def test_resumed_run_ends_with_the_same_weights():
    # 12 epochs, stopped after the 2nd: wherever the stop lands, the resumed run must end the same.
    spec, _, _ = ai.train_spec(**FAST, epochs=12, optimizer="sgd", schedule="cosine", seed=3)
    whole = ai.start_training(spec).wait()
    broken = _stop_after_epoch(ai.start_training(spec), 2)
    assert broken.result().status == "stopped"
    resumed = ai.resume(broken.id)
    assert resumed.status == "completed" and resumed.epochs_run == 12
    from pathlib import Path

    a = load_checkpoint(Path(whole.checkpoint) / LAST)["model"]
    b = load_checkpoint(Path(resumed.checkpoint) / LAST)["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    assert [h["val_loss"] for h in whole.history] == pytest.approx([h["val_loss"] for h in resumed.history])


class Poisonable(nn.Module):
    """A linear model whose output turns NaN at a chosen training step: a loss that blows up.

    It counts its own training forwards, so the blow-up lands at an exact step whatever the
    thread timing (digits limit=400 -> 280 training samples -> 5 steps of 64 per epoch).
    """

    def __init__(self, poison_at_step: int):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
        self.poison_at_step, self.steps = poison_at_step, 0

    def forward(self, x):
        out = self.net(x)
        if self.training:
            self.steps += 1
            if self.steps >= self.poison_at_step:
                return out * float("nan")
        return out


def test_nan_loss_fails_with_epoch_and_step_and_keeps_last_good_checkpoint():
    run = ai.start_training(data="digits", model=Poisonable(poison_at_step=5 + 2), limit=400, epochs=5)
    with pytest.raises(NonFiniteLossError, match=r"loss became NaN at epoch 2, step 2"):
        run.wait()
    assert run.status == "failed"
    last = load_checkpoint(run.job.run_dir / LAST)
    assert last["epoch"] == 1
    assert all(torch.isfinite(t).all() for t in last["model"].values())
    assert isinstance(run.events()[-1], RunEnded) and run.events()[-1].status == "failed"


def test_early_stop_on_a_metric_that_does_not_improve():
    r = ai.train(**FAST, epochs=20, lr=1e-12, early_stop=2, monitor="val_accuracy")
    assert r.status == "completed" and r.epochs_run == 3
    assert r.message.startswith("early stop")


@pytest.mark.parametrize("schedule", ["constant", "step", "cosine", "onecycle"])
def test_schedules_shape_the_learning_rate(schedule):
    r = ai.train(**FAST, epochs=6, lr=0.01, schedule=schedule)
    lrs = [h["lr"] for h in r.history]
    if schedule == "constant":
        assert lrs == [0.01] * 6
    elif schedule == "step":
        assert lrs[:2] == [0.01, 0.01] and lrs[2] == pytest.approx(0.001)
    elif schedule == "cosine":
        assert all(a > b for a, b in zip(lrs, lrs[1:]))
    else:
        peak = max(range(6), key=lrs.__getitem__)
        assert 0 < peak < 5 and lrs[-1] < lrs[0]


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_each_optimizer_learns(optimizer):
    lr = 0.05 if optimizer == "sgd" else 3e-3
    r = ai.train(**FAST, epochs=3, optimizer=optimizer, lr=lr, grad_clip=1.0)
    assert r.history[-1]["val_loss"] < r.history[0]["val_loss"] or r.metrics["val_accuracy"] > 0.8


def test_same_seed_same_result_and_init_is_recorded():
    a = ai.train(**FAST, epochs=2, init="kaiming_normal", seed=7)
    b = ai.train(**FAST, epochs=2, init="kaiming_normal", seed=7)
    assert [h["val_loss"] for h in a.history] == pytest.approx([h["val_loss"] for h in b.history], abs=1e-6)
    assert a.spec["init"]["scheme"] == "kaiming_normal"


def test_lr_finder_suggests_a_rate_inside_the_sweep():
    found = ai.lr_find(**FAST)
    assert len(found["lrs"]) == len(found["losses"]) > 10
    assert found["lrs"][0] <= found["suggestion"] <= found["lrs"][-1]
    assert all(math.isfinite(x) for x in found["losses"])
