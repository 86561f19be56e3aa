"""Data-parallel training under the real torchrun launcher: 2 CPU processes on gloo.

Each torchrun run costs a few seconds of process start-up (the launcher and every worker import
torch), so the runs here are few and small.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import nbaimaas as ai
from nbaimaas.engine.checkpoint import BEST, LAST, load_checkpoint
from nbaimaas.engine.distributed import DistributedRun, build
from nbaimaas.engine.metrics import make_loss
from nbaimaas.engine.optim import make_optimizer
from nbaimaas.errors import SpecError, UserError
from nbaimaas.events import Checkpointed, EpochEnded, RunEnded, RunStarted
from nbaimaas.specs import TrainSpec

SMALL = dict(data="digits", model="mlp", limit=400, batch_size=40, nproc=2)   # 280 training samples


def _follow(run, on_event=None, timeout=120):
    events = []
    while not run.done or not events or not isinstance(events[-1], RunEnded):
        new = run.events(events[-1].seq if events else -1, timeout=0.1)
        events += new
        for e in new:
            if on_event is not None:
                on_event(run, e)
        assert len(events) < 100_000
    return events


def test_two_processes_train_register_and_predict():
    run = ai.start_training(**SMALL, epochs=3, name="ddp-digits")
    assert isinstance(run, DistributedRun)
    events = _follow(run)
    r = run.result()
    assert r.status == "completed" and run.status == "completed" and r.epochs_run == 3
    kinds = [type(e) for e in events]
    assert kinds[0] is RunStarted and kinds[-1] is RunEnded
    assert [e.seq for e in events] == list(range(len(events)))
    # One stream: rank 0's. A second rank emitting would double every epoch and the start.
    assert kinds.count(RunStarted) == 1
    assert [e.epoch for e in events if isinstance(e, EpochEnded)] == [1, 2, 3]
    assert Checkpointed in kinds
    logged = [json.loads(line) for line in (Path(r.checkpoint) / "events.jsonl").read_text().splitlines()]
    assert [d["seq"] for d in logged] == list(range(len(events)))
    assert r.model == "ddp-digits:1" and ai.model("ddp-digits@best").version == 1
    assert r.metrics["val_accuracy"] > 0.5
    sample = ai.sample("digits", n=4, limit=400)
    pred = ai.predict("ddp-digits", sample["inputs"])
    assert len(pred.labels) == 4 and np.allclose(pred.probabilities.sum(1), 1, atol=1e-5)


def test_ddp_step_equals_one_process_on_the_global_batches():
    spec, _, _ = ai.train_spec(**SMALL, epochs=1, optimizer="sgd", lr=0.1, seed=5)
    r = ai.start_training(spec).wait(120)
    assert r.status == "completed"
    got = load_checkpoint(Path(r.checkpoint) / LAST)["model"]
    assert not any(k.startswith("module.") for k in got)     # the unwrapped module's state dict

    # By hand, in this process: the same data, weights and permutation, one global batch a step.
    data, model = build(spec)
    loss_fn = make_loss(data.info.task, spec.loss)
    optimizer = make_optimizer(spec, model.parameters())
    n, bs = len(data.train), spec.batch_size
    assert n % bs == 0
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(spec.seed))
    for i in range(0, n, bs):
        idx = perm[i:i + bs]
        optimizer.zero_grad()
        loss_fn(model(data.train.x[idx]), data.train.y[idx]).backward()
        optimizer.step()
    want = model.state_dict()
    assert set(got) == set(want)
    for k in want:
        assert torch.allclose(got[k], want[k], rtol=1e-5, atol=1e-6), k
    assert not torch.equal(got[k], build(spec)[1].state_dict()[k])   # it did train


def test_stop_ends_every_rank_keeps_a_checkpoint_and_resumes():
    # Full digits with small batches: ~160 steps an epoch, so the stop lands long before the end.
    spec, _, _ = ai.train_spec(data="digits", model="mlp", batch_size=8, nproc=2, epochs=8, seed=1)

    def stop_after_first_epoch(run, e):
        if isinstance(e, EpochEnded) and e.epoch == 1:
            run.stop()

    run = ai.start_training(spec)
    events = _follow(run, stop_after_first_epoch)
    r = run.result()
    assert run.done and r.status == "stopped" and run.status == "stopped"   # the launcher ended: all ranks
    assert 1 <= r.epochs_run < 8 and "kept the best checkpoint" in r.message
    assert events[-1].status == "stopped"
    last = load_checkpoint(Path(r.checkpoint) / LAST)
    assert last["epoch"] == r.epochs_run and (Path(r.checkpoint) / BEST).exists()

    resumed = ai.resume(run.id)
    assert resumed.status == "completed" and resumed.epochs_run == 8
    assert [h["epoch"] for h in resumed.history] == list(range(1, 9))


def test_service_worker_trains_a_job_on_two_processes(tmp_path):
    # The service's job worker goes through LocalBackend.start_training, so nproc > 1 is the same path.
    store, job = tmp_path / "store", "run-20260101-120000-abc123"
    folder = store / "jobs" / job
    folder.mkdir(parents=True)
    spec = TrainSpec.from_dict({"data": {"limit": 400}, "epochs": 2, "batch_size": 40, "nproc": 2,
                                "name": "svc"})
    (folder / "spec.json").write_text(spec.to_json())
    (folder / "status.json").write_text(json.dumps({"id": job, "status": "pending"}))
    subprocess.run([sys.executable, "-m", "nbaimaas.service.worker", "--store", str(store), "--job", job],
                   check=True, timeout=120)
    status = json.loads((folder / "status.json").read_text())
    assert status["status"] == "completed" and status["model"] == "svc:1"
    logged = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    assert logged[0]["kind"] == "RunStarted" and logged[-1]["kind"] == "RunEnded"
    assert [d["seq"] for d in logged] == list(range(len(logged)))
    assert [d["epoch"] for d in logged if d["kind"] == "EpochEnded"] == [1, 2]


def test_a_failure_on_another_rank_is_reported_as_that_ranks_error(tmp_path):
    from nbaimaas.engine.distributed import launch
    from nbaimaas.errors import TrainingError

    spec = TrainSpec.from_dict({"data": {"name": "digits", "limit": 400}, "model": {"arch": "mlp"},
                                "epochs": 2, "batch_size": 40, "nproc": 2})
    run = launch(spec, tmp_path / "run", tmp_path / "store", "run-fail",
                 worker_module="tests.engine.fail_rank1_worker")
    ended = _follow(run)[-1]
    cause = "loss became NaN at epoch 1, step 3 (rank 1)"
    assert ended.status == "failed" and cause in ended.message, ended.message
    with pytest.raises(TrainingError, match=re.escape(cause)):
        run.result()
    assert run.status == "failed"


def test_in_process_data_and_modules_cannot_cross_processes():
    x, y = np.random.rand(40, 3).astype("float32"), np.arange(40) % 2
    with pytest.raises(UserError, match="nproc > 1 needs a built-in dataset"):
        ai.start_training(data=(x, y), nproc=2, epochs=1)
    with pytest.raises(UserError, match="nproc > 1 needs a built-in dataset"):
        ai.start_training(data="digits", model=nn.Linear(64, 10), nproc=2, epochs=1)


def test_nproc_is_validated_and_round_trips():
    spec = TrainSpec(nproc=2)
    assert TrainSpec.from_json(spec.to_json()) == spec and spec.to_dict()["nproc"] == 2
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(SpecError, match="nproc"):
            TrainSpec(nproc=bad)
    with pytest.raises(SpecError, match="global batch"):
        TrainSpec(nproc=4, batch_size=2)
