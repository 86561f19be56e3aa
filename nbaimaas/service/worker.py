"""One training job in its own process: ``python -m nbaimaas.service.worker --store S --job ID``.

The worker reuses LocalBackend on the shared store (so a job trains, checkpoints, registers and
resumes exactly as a notebook run does), copies every event to ``events.jsonl`` and writes the
job's status and result. SIGTERM asks the run to stop at a batch boundary (the best checkpoint
is kept). If the server process dies, the worker exits at once without a final status, so the
next server finds the job "interrupted" and it can be resumed.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

STOP = threading.Event()          # set by SIGTERM, before torch is even imported
POLL_S = 0.2


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, lambda *_: STOP.set())
    args = _parse(argv)
    _exit_with_parent(os.getppid())
    from ..engine.store import home, inside

    store = home(args.store)
    folder = inside(store, "jobs", args.job)
    lock = _take_lock(folder / "lock")   # held until this process ends, however it ends
    try:
        return _work(store, folder, args.job, args.resume)
    finally:
        os.close(lock)


def _parse(argv):
    p = argparse.ArgumentParser(prog="nbaimaas.service.worker")
    p.add_argument("--store", required=True)
    p.add_argument("--job", required=True)
    p.add_argument("--resume", action="store_true")
    return p.parse_args(argv)


def _exit_with_parent(parent: int) -> None:
    """A job dies with its server, so a restart can tell it was interrupted (and resume it)."""
    def watch():
        while True:
            if os.getppid() != parent:
                os._exit(3)
            time.sleep(POLL_S)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _take_lock(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except ImportError:
        pass
    except BlockingIOError:
        print("another worker holds this job", file=sys.stderr)
        os._exit(4)
    return fd


def _work(store: Path, folder: Path, job_id: str, resume: bool) -> int:
    from ..engine.store import atomic_write_json, read_json

    status = read_json(folder / "status.json")
    try:
        run = _start(store, folder, job_id, resume)
    except BaseException as exc:  # noqa: BLE001 - the client must learn why, not a dead job
        error = _error_dict(exc)
        atomic_write_json(folder / "result.json", {"error": error})
        status.update(status="failed", error=error, message=error["message"], ended=_now())
        atomic_write_json(folder / "status.json", status)
        return 1
    status.update(status="running", pid=os.getpid(), started=_now())
    atomic_write_json(folder / "status.json", status)
    _pump(run, folder / "events.jsonl")
    _finish(run, folder, status)
    return 0


def _start(store: Path, folder: Path, job_id: str, resume: bool):
    from ..backends.local import LocalBackend
    from ..engine.store import read_json
    from ..specs import TrainSpec
    from .wire import decode_inline, decode_npy
    from ..engine.store import inside

    def load_array(array_id: str):
        return decode_npy(inside(store, "arrays", f"{array_id}.npy").read_bytes())

    inline_path = folder / "inline.json"
    inline = decode_inline(read_json(inline_path), load_array) if inline_path.exists() else None
    backend = LocalBackend(store)
    if resume:
        return backend.resume(job_id, inline)
    spec = TrainSpec.from_dict(read_json(folder / "spec.json"))
    return backend.start_training(spec, inline, run_id=job_id)


def _pump(run, path: Path) -> None:
    """Copy events to the log until the run ends; on resume, numbering continues the log."""
    from ..engine.store import append_event, next_seq

    base = next_seq(path)
    seen, stopping = -1, False
    while True:
        if STOP.is_set() and not stopping:
            run.stop()
            stopping = True
        done = run.done                      # read before the events, so none is missed
        for event in run.events(seen, timeout=POLL_S):
            seen = event.seq
            append_event(path, {**event.to_dict(), "seq": base + event.seq})
        if done and not run.events(seen):
            return


def _finish(run, folder: Path, status: dict) -> None:
    from ..engine.store import atomic_write_json

    try:
        result = run.result().to_dict()
        atomic_write_json(folder / "result.json", result)
        status.update(status=result["status"], model=result.get("model"), message=result.get("message", ""))
    except BaseException as exc:  # noqa: BLE001
        error = _error_dict(exc)
        atomic_write_json(folder / "result.json", {"error": error})
        status.update(status="failed", error=error, message=error["message"])
    status["ended"] = _now()
    atomic_write_json(folder / "status.json", status)   # last: readers see the result first


def _error_dict(exc: BaseException) -> dict:
    from ..errors import NbaimaasError, TrainingError

    if isinstance(exc, NbaimaasError):
        return exc.to_dict()
    traceback.print_exc()   # into worker.log, for whoever debugs it; never to the client
    return TrainingError(f"training failed: {type(exc).__name__}: {exc}",
                         "see worker.log in the job's folder").to_dict()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


if __name__ == "__main__":
    sys.exit(main())
