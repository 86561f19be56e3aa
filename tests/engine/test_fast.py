"""The training step's fast paths (engine/fast.py): the CPU path is exactly the plain step, and
on CUDA the whole-step graph trains like eager (GPU tests skip without CUDA)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import nbaimaas as ai
from nbaimaas.engine.checkpoint import load_checkpoint
from nbaimaas.engine.fast import CheckpointWriter, LossMeter, StepRunner, graph_blocker, use_bf16
from nbaimaas.engine.optim import make_schedule
from nbaimaas.engine.types import Split
from nbaimaas.events import Checkpointed

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _setup(device="cpu", n=200, conv=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    if conv:
        x = torch.randn(n, 1, 12, 12, generator=g)
        model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
    else:
        x = torch.randn(n, 16, generator=g)
        model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 10))
    y = torch.randint(0, 10, (n,), generator=g)
    torch.manual_seed(seed)
    for p in model.parameters():
        nn.init.normal_(p, std=0.1)
    return Split(x.to(device), y.to(device)), model.to(device)


def _spec(**kw):
    return ai.TrainSpec(**{"batch_size": 32, **kw})


def _plain_steps(model, train, spec, batches):
    """The textbook step, as the loop did it before fast.py."""
    opt = torch.optim.Adam(model.parameters(), lr=spec.lr)
    loss_fn = nn.CrossEntropyLoss()
    torch.manual_seed(1)
    for idx in batches:
        loss = loss_fn(model(train.x[idx]), train.y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if spec.grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), spec.grad_clip)
        opt.step()
    return model


def _runner_steps(model, train, spec, batches, device="cpu", use_graph=True):
    opt = torch.optim.Adam(model.parameters(), lr=spec.lr)
    schedule = make_schedule(spec, opt, len(batches))       # made before the runner, as in fit()
    runner = StepRunner(model, nn.CrossEntropyLoss(), opt, train, spec, torch.device(device), use_graph)
    torch.manual_seed(1)
    losses = []
    for idx in batches:
        losses.append(float(runner.step(idx)))
        schedule.after_batch()
    return model, runner, losses


def _batches(n, bs, epochs=2, device="cpu"):
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g).to(device)
        out += [perm[i:i + bs] for i in range(0, n, bs)]      # includes the short last batch
    return out


@pytest.mark.parametrize("grad_clip", [None, 0.5])
def test_cpu_step_runner_is_exactly_the_plain_step(grad_clip):
    train, model = _setup()
    spec = _spec(grad_clip=grad_clip)
    batches = _batches(len(train), spec.batch_size)
    a = _plain_steps(copy.deepcopy(model), train, spec, batches)
    b, runner, _ = _runner_steps(copy.deepcopy(model), train, spec, batches)
    assert runner.graph is None and runner.describe() == "eager fp32"
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0, msg=name)


def test_cpu_bf16_when_asked_for_trains():
    train, model = _setup()
    spec = _spec(precision="bf16")
    _, runner, losses = _runner_steps(model, train, spec, _batches(len(train), 32, epochs=4))
    assert runner.bf16 and all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]


def test_fast_paths_are_chosen_by_device_and_spec():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert not use_bf16("auto", cpu) and use_bf16("bf16", cpu) and not use_bf16("fp32", cuda)
    opt = torch.optim.Adam([nn.Parameter(torch.zeros(1))])
    sgd = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    assert graph_blocker(_spec(), opt, cpu) == "not on CUDA"
    assert graph_blocker(_spec(), opt, cuda) is None
    assert graph_blocker(_spec(schedule="cosine"), opt, cuda) is None       # tensor lr
    assert "one-cycle" in graph_blocker(_spec(schedule="onecycle"), opt, cuda)
    assert graph_blocker(_spec(optimizer="sgd", schedule="cosine"), sgd, cuda) is not None
    assert graph_blocker(_spec(optimizer="sgd"), sgd, cuda) is None


def test_loss_meter_on_the_cpu_names_the_first_bad_step():
    meter = LossMeter(torch.device("cpu"), n=70, batch_size=32)
    for step, (value, n) in enumerate([(1.0, 32), (3.0, 32), (2.0, 6)], start=1):
        meter.add(step, torch.tensor(value), n)
    assert meter.mean(3) == pytest.approx((32 + 96 + 12) / 70)
    assert meter.first_nonfinite(3) is None
    meter.add(4, torch.tensor(float("nan")), 32)
    meter.add(5, torch.tensor(float("inf")), 32)
    assert meter.bad_step == 4 and meter.first_nonfinite(5) == 4


def test_checkpoint_writer_keeps_the_newest_state_and_emits_events(tmp_path):
    events = []
    writer = CheckpointWriter(lambda cls, **f: events.append((cls, f)), min_interval_s=60)
    writer.submit(tmp_path / "last.pt", {"epoch": 1}, 1, "last")
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1      # the first one: at once
    for epoch in (2, 3, 4):                      # the writer sleeps: only the newest gets written
        writer.submit(tmp_path / "last.pt", {"epoch": epoch}, epoch, "last")
    writer.submit(tmp_path / "best.pt", {"epoch": 3}, 3, "best")
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1
    writer.close()                               # close writes what is queued, at once
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 4
    assert load_checkpoint(tmp_path / "best.pt")["epoch"] == 3
    assert [(c, f["epoch"], f["which"]) for c, f in events] == [
        (Checkpointed, 1, "last"), (Checkpointed, 4, "last"), (Checkpointed, 3, "best")]


def test_checkpoint_writer_reraises_a_write_error_on_close(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    writer = CheckpointWriter(lambda *a, **k: None)
    with pytest.raises(OSError):                 # the first write is on the caller's thread
        writer.submit(tmp_path / "file" / "last.pt", {"epoch": 1}, 1, "last")
    writer.submit(tmp_path / "file" / "last.pt", {"epoch": 2}, 2, "last")
    with pytest.raises(OSError):                 # later ones are re-raised by close
        writer.close()


# -- CUDA: the whole-step graph trains like eager ----------------------------------------------

@CUDA
@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_cuda_graph_training_equals_eager_in_fp32(schedule):
    train, model = _setup("cuda", n=200)
    spec = _spec(precision="fp32", grad_clip=1.0, schedule=schedule, epochs=3)
    batches = _batches(len(train), spec.batch_size, epochs=3, device="cuda")
    # eval(): dropout off, so both runs compute the same function (their RNG streams differ)
    eager, _, eager_losses = _runner_steps(copy.deepcopy(model).eval(), train, spec, batches, "cuda", False)
    graph, runner, graph_losses = _runner_steps(copy.deepcopy(model).eval(), train, spec, batches, "cuda")
    assert runner.graph is not None, runner.notices
    torch.testing.assert_close(torch.tensor(graph_losses), torch.tensor(eager_losses), rtol=1e-4, atol=1e-5)
    for pa, pb in zip(eager.parameters(), graph.parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-4, atol=1e-5)


@CUDA
def test_cuda_graph_bf16_channels_last_loss_curve_matches_eager():
    train, model = _setup("cuda", n=256, conv=True)
    spec = _spec(precision="auto")
    batches = _batches(len(train), spec.batch_size, epochs=4, device="cuda")
    _, eager_runner, eager_losses = _runner_steps(copy.deepcopy(model), train, spec, batches, "cuda", False)
    _, runner, graph_losses = _runner_steps(copy.deepcopy(model), train, spec, batches, "cuda")
    assert runner.graph is not None, runner.notices
    assert runner.channels_last and runner.bf16 == torch.cuda.is_bf16_supported()
    torch.testing.assert_close(torch.tensor(graph_losses), torch.tensor(eager_losses), rtol=5e-2, atol=5e-2)


@CUDA
def test_engine_trains_on_cuda_with_the_graph_and_registers_plain_weights():
    r = ai.train(data="digits", model="lenet", epochs=3, batch_size=64, device="cuda", name="gpu-lenet")
    assert r.status == "completed" and r.history[-1]["val_accuracy"] > 0.3
    assert "capture failed" not in r.message
    assert ai.predict(r.model, ai.sample("digits", n=4)["inputs"]).labels      # channels_last weights saved
