"""Data-parallel training on several processes of one machine: torchrun + DistributedDataParallel.

    launch(spec, run_dir, store, run_id) -> DistributedRun    # the Run protocol, in the caller
    python -m torch.distributed.run --standalone --nproc_per_node N \\
        -m nbaimaas.engine.distributed --spec spec.json --run-dir DIR --store STORE [--resume]

Every process runs the ordinary ``loop.fit`` with a ``DistShard``:
  - every rank prepares the same data and builds the same model from the same seed (DDP also
    broadcasts rank 0's weights when it wraps the model);
  - every rank draws the same seeded permutation each epoch and trains on ``perm[rank::world]``,
    ``batch_size // world`` samples a step: ``batch_size`` is the *global* batch. Each rank gets
    ``n // world`` samples, so the last ``n % world`` of an epoch's order sit that epoch out and
    every step has equal per-rank batches: DDP's averaged gradient is then exactly the gradient
    of the global batch's mean loss;
  - the epoch's training loss is all-reduced; validation runs on rank 0 alone (val splits are
    small) and its metrics are broadcast, so best-epoch and early-stop decisions agree;
  - a stop (the ``stop`` file in the run folder, SIGTERM, or the launching process gone) is
    all-reduced at every batch boundary (the vote travels during the next step, so a stop lands
    one step later, at the same step on every rank);
  - rank 0 alone emits events (``<run-dir>/events.jsonl``, one ``Event.to_dict()`` a line; a
    Progress loss is rank 0's running loss, its samples/s the global rate), writes checkpoints
    (the unwrapped module's state, the single-process format, so ``ai.resume`` and
    ``load_checkpoint`` read them), registers the model and writes ``result.json``.

gloo on the CPU, nccl on CUDA with one GPU per local rank (the whole-step CUDA graph is off under
DDP). Only what a spec can name crosses to the workers: built-in datasets, CSV/image-folder
paths, catalog or ``layers`` models. A failure of any rank ends the launcher (torchrun stops the
others). A non-zero rank writes its own error to ``failed-rank<N>.json`` before it exits; rank 0,
whose next collective then fails with a bare connection error, reports that rank's error instead
(the cause, e.g. a NaN loss on rank 1's shard). The caller reads the error from ``result.json``,
else a rank's file, else the launcher's log.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..errors import NbaimaasError, TrainingError, UserError, error_from_dict
from ..events import Event, RunEnded, event_from_dict
from ..paths import child_env
from ..results import TrainResult
from ..specs import TrainSpec
from .loop import LoopContext, Shard, fit, pick_device
from .runs import EventLog, Job, LocalRun
from .store import append_event, atomic_write_json, next_seq

EVENTS, RESULT, STOP_FILE, LOG = "events.jsonl", "result.json", "stop", "launcher.log"
RANK_FAILED = "failed-rank{}.json"       # a non-zero rank's own error, written before it exits
POLL_S = 0.05
WATCH_S = 0.2
INLINE_ERROR = "nproc > 1 needs a built-in dataset, a CSV/image-folder path and a catalog or 'layers' model"


def check_portable(spec: TrainSpec, inline=None, module=None) -> None:
    """What other processes cannot rebuild from the spec alone: in-process arrays and modules."""
    if inline is not None or module is not None or spec.data.name == "inline" or spec.model.arch == "module":
        raise UserError(INLINE_ERROR)


# -- the caller's side: start torchrun, follow its files --------------------------------------

def launch(spec: TrainSpec, run_dir: Path, store: Path, run_id: str, resume: bool = False,
           worker_module: str = "nbaimaas.engine.distributed") -> DistributedRun:
    """Start ``spec.nproc`` workers under torchrun; returns at once with the run's handle.

    ``worker_module`` is what each worker runs with ``-m`` (a seam for fault-injection tests)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / "spec.json", spec.to_dict())
    for stale in (STOP_FILE, RESULT, *(p.name for p in run_dir.glob(RANK_FAILED.format("*")))):
        (run_dir / stale).unlink(missing_ok=True)
    first_seq = next_seq(run_dir / EVENTS)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(spec.nproc),
           "-m", worker_module, "--spec", str(run_dir / "spec.json"),
           "--run-dir", str(run_dir), "--store", str(store), "--watch-pid", str(os.getpid())]
    if resume:
        cmd.append("--resume")
    with open(run_dir / LOG, "ab") as log:
        # Its own session: a Ctrl-C meant for the notebook or the CLI becomes run.stop(), not a kill.
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                env=child_env(), start_new_session=True)
    return DistributedRun(run_id, run_dir, proc, first_seq)


class DistributedRun:
    """The Run protocol over a torchrun launcher: events tailed from rank 0's ``events.jsonl``.

    The log of a run folder numbers on across resumes; this handle shows its own attempt's
    events numbered from 0, as a ``LocalRun`` does."""

    def __init__(self, run_id: str, run_dir: Path, proc: subprocess.Popen, first_seq: int = 0):
        self.id, self.run_dir, self._proc, self._first = run_id, run_dir, proc, first_seq
        self._events: list[Event] = []
        self._offset = 0
        self._lock = threading.Lock()

    @property
    def done(self) -> bool:
        return self._proc.poll() is not None

    @property
    def status(self) -> str:
        if not self.done:
            return "running"
        doc = self._result_doc()
        return doc.get("status", "failed") if doc else "failed"

    def events(self, after: int = -1, timeout: float | None = 0) -> list[Event]:
        deadline = time.monotonic() + (timeout or 0)
        while True:
            exited = self.done                  # before reading, so no last event is missed
            with self._lock:
                self._read(exited)
                new = self._events[after + 1:]
            if new or exited or time.monotonic() >= deadline:
                return new
            time.sleep(POLL_S)

    def stop(self) -> None:
        """Ask every rank to stop at the next batch boundary; rank 0 keeps the best checkpoint."""
        if not self.done:
            (self.run_dir / STOP_FILE).touch()

    def wait(self, timeout: float | None = None) -> TrainResult:
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"run {self.id} still running after {timeout} s") from None
        return self.result()

    def result(self) -> TrainResult:
        if not self.done:
            raise TrainingError(f"run {self.id} is still running", "wait() for it or stop() it first")
        doc = self._result_doc()
        if doc is None:
            failure = rank_failure(self.run_dir)     # rank 0 died without a word: another rank's
            if failure is not None:
                raise failure
            raise TrainingError(self._crash_message(), f"see {self.run_dir / LOG}")
        if "error" in doc:
            raise error_from_dict(doc["error"], "training failed")
        return TrainResult.from_dict(doc)

    def __repr__(self) -> str:
        return f"<DistributedRun {self.id} {self.status}>"

    def _read(self, exited: bool) -> None:
        try:
            with open(self.run_dir / EVENTS, "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except FileNotFoundError:
            chunk = b""
        end = chunk.rfind(b"\n") + 1            # complete lines only: rank 0 may be mid-line
        self._offset += end
        for line in chunk[:end].splitlines():
            doc = json.loads(line)
            if doc["seq"] >= self._first:
                self._events.append(event_from_dict({**doc, "seq": len(self._events)}))
        ended = self._events and isinstance(self._events[-1], RunEnded)
        if exited and not ended:                # killed, or crashed before rank 0 could say so
            self._events.append(RunEnded(run_id=self.id, seq=len(self._events), status="failed",
                                         message=self._crash_message()))

    def _result_doc(self) -> dict | None:
        try:
            return json.loads((self.run_dir / RESULT).read_text())
        except FileNotFoundError:
            return None

    def _crash_message(self) -> str:
        failure = rank_failure(self.run_dir)
        if failure is not None:
            return str(failure)
        try:
            lines = (self.run_dir / LOG).read_text(errors="replace").strip().splitlines()
        except FileNotFoundError:
            lines = []
        errors = [line for line in lines if "Error" in line]
        last = (errors or lines or ["no output"])[-1].strip()
        return f"distributed training ended without a result (exit code {self._proc.returncode}): {last}"


# -- the workers' side -------------------------------------------------------------------------

class DistShard(Shard):
    """One rank of ``world``: its share of each epoch, and the collectives that keep ranks in step.

    The control traffic (stop votes, the epoch loss, rank 0's metrics) is a few numbers on the
    CPU: on CUDA it goes through a separate gloo group, so it never makes the GPU stream wait."""

    def __init__(self, rank: int, world: int, device: torch.device):
        self.rank, self.world, self.is_main = rank, world, rank == 0
        self.device = device
        self.group = dist.new_group(backend="gloo") if device.type == "cuda" else None
        self._flag = torch.zeros(1)
        self._vote = None                                    # the stop vote still in flight

    def take(self, perm: torch.Tensor) -> torch.Tensor:
        return perm[:self.size(len(perm)) * self.world][self.rank::self.world]

    def size(self, n: int) -> int:
        return n // self.world

    def batch(self, batch_size: int) -> int:
        return batch_size // self.world

    def wrap(self, model: nn.Module) -> nn.Module:
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)   # broadcasts rank 0's weights

    def stop(self, requested: bool) -> bool:
        """Any rank asking stops them all, one step after the ask, at the same step everywhere.

        A blocking vote each step would cost a round trip per step (about 0.7 ms with gloo on
        two busy cores, half the step of a small model); instead each step's vote travels
        while the step computes and is read at the next boundary."""
        if self._vote is not None:
            self._vote.wait()
            self._vote = None
            if self._flag.item():
                return True
        self._flag.fill_(float(requested))
        self._vote = dist.all_reduce(self._flag, op=dist.ReduceOp.MAX, group=self.group, async_op=True)
        return False

    def mean(self, value: float) -> float:
        total = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(total, group=self.group)             # equal shares: the mean of means
        return float(total.item()) / self.world

    def from_main(self, fn, *args):
        box = [fn(*args) if self.is_main else None]
        dist.broadcast_object_list(box, src=0, group=self.group, device=torch.device("cpu"))
        return box[0]


def rank_failure(run_dir: Path) -> NbaimaasError | None:
    """The earliest error a non-zero rank wrote for itself in this attempt, or None."""
    docs = []
    for path in run_dir.glob(RANK_FAILED.format("*")):
        try:
            docs.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue                                # being written: its rank is not done yet
    return error_from_dict(min(docs, key=lambda d: d["at"])["error"], "training failed") if docs else None


class _MainRun(LocalRun):
    """Rank 0's run: LocalRun's ending (best weights, registration, RunEnded) around a sharded fit."""

    def _failure(self, exc: BaseException) -> BaseException:
        # A collective fails with a bare connection error when another rank died first: that
        # rank's own error (written before it exited) is the cause the user needs.
        return rank_failure(self.job.run_dir) or super()._failure(exc)

    def __init__(self, job: Job, run_id: str, shard: DistShard, stop: threading.Event):
        super().__init__(job, run_id)
        self.shard, self._stop = shard, stop
        path, base = job.run_dir / EVENTS, next_seq(job.run_dir / EVENTS)
        self.log = EventLog(run_id, on_event=lambda e: append_event(path, {**e.to_dict(), "seq": base + e.seq}))

    def _context(self) -> LoopContext:
        job = self.job
        return LoopContext(job.spec, job.data, job.model, job.run_dir, self.log.emit, self._stop, job.resume,
                           self.shard)


def build(spec: TrainSpec):
    """The data and the initialised model, as ``LocalBackend`` builds them (same seed, same result)."""
    from .data import prepare
    from .init import initialize
    from .models import create_model

    data = prepare(spec.data)
    model = create_model(spec.model, data.info)
    initialize(model, spec.init, spec.seed)
    return data, model


def _watch(stop: threading.Event, run_dir: Path, pid: int | None) -> None:
    """Rank 0: a ``stop`` file, or the launching process gone (a dead kernel or service worker)."""
    def main():
        while not stop.is_set():
            if (run_dir / STOP_FILE).exists() or (pid is not None and not _alive(pid)):
                stop.set()
            time.sleep(WATCH_S)

    threading.Thread(target=main, name="nbaimaas-stop-watch", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def worker(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="nbaimaas.engine.distributed")
    p.add_argument("--spec", required=True)
    p.add_argument("--run-dir", required=True)
    p.add_argument("--store", required=True)
    p.add_argument("--watch-pid", type=int, default=None)
    p.add_argument("--resume", action="store_true")
    args = p.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())   # torchrun forwards its SIGTERM to us
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    spec = TrainSpec.from_json(Path(args.spec).read_text())
    run_dir = Path(args.run_dir)
    device = pick_device(spec.device)
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        dist.init_process_group("gloo")
    try:
        shard = DistShard(rank, world, device)
        if rank != 0:
            try:
                data, model = build(spec)
                fit(LoopContext(spec, data, model, run_dir, lambda *a, **k: None, stop, args.resume, shard))
            except Exception as exc:
                atomic_write_json(run_dir / RANK_FAILED.format(rank), {"at": time.time(), "error": _error_dict(exc)})
                raise
            return 0
        _watch(stop, run_dir, args.watch_pid)
        return _main_rank(spec, run_dir, Path(args.store), shard, stop, args.resume)
    finally:
        dist.destroy_process_group()


def _main_rank(spec, run_dir: Path, store: Path, shard: DistShard, stop, resume: bool) -> int:
    from .registry import Registry

    try:
        data, model = build(spec)
    except BaseException as exc:  # noqa: BLE001 - the caller must learn why, not a dead launcher
        append_event(run_dir / EVENTS, RunEnded(run_id=run_dir.name, seq=next_seq(run_dir / EVENTS),
                                           status="failed", message=str(exc)).to_dict())
        atomic_write_json(run_dir / RESULT, {"error": _error_dict(exc)})
        raise
    run = _MainRun(Job(spec, data, model, run_dir, Registry(store), resume), run_dir.name, shard, stop)
    run._main()
    if run._error is not None:
        atomic_write_json(run_dir / RESULT, {"error": _error_dict(run._error)})
        return 1
    atomic_write_json(run_dir / RESULT, run._result.to_dict())
    return 0


def _error_dict(exc: BaseException) -> dict:
    if isinstance(exc, NbaimaasError):
        return exc.to_dict()
    traceback.print_exception(exc)   # into launcher.log, for whoever debugs it
    return TrainingError(f"training failed: {type(exc).__name__}: {exc}",
                         "see launcher.log in the run folder").to_dict()


def main() -> None:
    code = worker()
    # Everything is on disk and the process group is gone; tearing down an interpreter that
    # imported torch takes seconds on a small CPU, and torchrun waits for every worker to exit.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
