"""Training jobs: files in the store, one worker process each, never the server's own work.

    <store>/jobs/<id>/spec.json      the TrainSpec (the job id is also the engine's run id)
                     /inline.json    inline data, as wire.encode_inline wrote it (arrays by id)
                     /status.json    written atomically: by the server (pending, interrupted)
                                     and by the worker (running, final) - never both at once
                     /events.jsonl   append-only, one event per line, seq increasing
                     /result.json    TrainResult or {"error": {...}} once the worker is done
                     /lock           held (flock) by the live worker for its whole life
    <store>/arrays/<id>.npy          uploaded arrays (read with allow_pickle=False)

A job whose status says pending/running but whose lock nobody holds lost its worker (the
server or the machine died): it becomes "interrupted" and can be resumed from its checkpoint.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..errors import ConflictError, NotFoundError, UserError, error_from_dict
from ..engine.store import append_event, atomic_write_json, inside, read_events, read_json
from ..paths import child_env

__all__ = ["JobStore", "JOB_ID", "TERMINAL", "new_job_id", "lock_held"]

JOB_ID = re.compile(r"run-\d{8}-\d{6}-[0-9a-f]{6}")
ACTIVE = ("pending", "running")
TERMINAL = ("completed", "stopped", "failed", "interrupted")


def new_job_id() -> str:
    # The engine's run-id format, so the job's checkpoints live in <store>/runs/<id>.
    return time.strftime("run-%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def lock_held(path: Path) -> bool:
    """True while some process holds the flock on ``path`` (the job's worker)."""
    try:
        import fcntl
    except ImportError:   # no flock (Windows): trust the status file
        return True
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)   # closing releases a lock we might just have taken
    return False


class JobStore:
    """The server's view of jobs: create, spawn a worker, observe, stop, resume."""

    def __init__(self, store: Path, python: str | None = None):
        self.store = store
        self.root = inside(store, "jobs")
        self.root.mkdir(exist_ok=True)
        self.python = python or sys.executable
        self._procs: dict[str, subprocess.Popen] = {}

    # -- paths and status -----------------------------------------------------------------
    def folder(self, job_id: str) -> Path:
        if not isinstance(job_id, str) or not JOB_ID.fullmatch(job_id):
            raise UserError(f"invalid job id {job_id!r}", "job ids look like run-20250101-120000-abc123")
        folder = inside(self.root, job_id)
        if not (folder / "status.json").exists():
            raise NotFoundError(f"no job '{job_id}'", "list them with GET /v1/jobs")
        return folder

    def status(self, job_id: str) -> dict:
        folder = self.folder(job_id)
        self._refresh(job_id, folder)
        return read_json(folder / "status.json")

    def list(self) -> list[dict]:
        out = []
        for folder in sorted(self.root.iterdir()):
            if JOB_ID.fullmatch(folder.name) and (folder / "status.json").exists():
                out.append(self.status(folder.name))
        return out

    def recover(self) -> list[str]:
        """At start: jobs that were running under a dead worker become interrupted."""
        return [job["id"] for job in self.list() if job["status"] == "interrupted"]

    def _refresh(self, job_id: str, folder: Path) -> None:
        st = read_json(folder / "status.json")
        if st["status"] not in ACTIVE or self._alive(job_id, folder):
            return
        st = read_json(folder / "status.json")   # the worker may have finished meanwhile
        if st["status"] not in ACTIVE:
            return
        events = read_events(folder / "events.jsonl")
        if events and events[-1]["kind"] == "RunEnded":
            # The run itself ended; only its worker died before writing the final status.
            st.update(status=events[-1]["status"], ended=now(), message=events[-1].get("message", ""))
            atomic_write_json(folder / "status.json", st)
            return
        st.update(status="interrupted", ended=now(),
                  message="the worker stopped without finishing (service restart or crash); "
                          "resume it to continue from the last checkpoint")
        atomic_write_json(folder / "status.json", st)
        append_event(folder / "events.jsonl", {
            "kind": "RunEnded", "run_id": job_id, "seq": events[-1]["seq"] + 1 if events else 0,
            "time": time.time(), "status": "interrupted", "metrics": {}, "model": None,
            "message": st["message"]})

    def _alive(self, job_id: str, folder: Path) -> bool:
        proc = self._procs.get(job_id)
        if proc is not None and proc.poll() is None:
            return True
        return lock_held(folder / "lock")

    # -- actions --------------------------------------------------------------------------
    def submit(self, spec: dict, inline: dict | None) -> str:
        job_id = new_job_id()
        folder = inside(self.root, job_id)
        folder.mkdir()
        atomic_write_json(folder / "spec.json", spec)
        if inline is not None:
            atomic_write_json(folder / "inline.json", inline)
        self._spawn(job_id, folder, resume=False)
        return job_id

    def resume(self, job_id: str) -> None:
        folder = self.folder(job_id)
        st = self.status(job_id)
        if st["status"] in ACTIVE:
            raise ConflictError(f"job {job_id} is still {st['status']}")
        if st["status"] == "completed":
            raise ConflictError(f"job {job_id} already completed; nothing to resume")
        has_checkpoint = (inside(self.store, "runs", job_id) / "last.pt").exists()
        self._spawn(job_id, folder, resume=has_checkpoint, resumes=st.get("resumes", 0) + 1)

    def _spawn(self, job_id: str, folder: Path, resume: bool, resumes: int = 0) -> None:
        atomic_write_json(folder / "status.json", {
            "id": job_id, "status": "pending", "created": now(), "pid": None, "message": "",
            "model": None, "error": None, "resumes": resumes})
        cmd = [self.python, "-m", "nbaimaas.service.worker", "--store", str(self.store), "--job", job_id]
        if resume:
            cmd.append("--resume")
        with open(folder / "worker.log", "ab") as log:
            self._procs[job_id] = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=child_env())

    def stop(self, job_id: str) -> dict:
        """SIGTERM: the worker stops at a batch boundary and keeps its best checkpoint."""
        st = self.status(job_id)
        if st["status"] in ACTIVE:
            pid = self._pid(job_id, st)
            if pid is not None:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        return st

    def _pid(self, job_id: str, st: dict) -> int | None:
        proc = self._procs.get(job_id)
        if proc is not None:
            return proc.pid if proc.poll() is None else None
        # A worker from an earlier server: signal it only while its lock proves it is alive.
        folder = self.folder(job_id)
        return st.get("pid") if lock_held(folder / "lock") else None

    def started_or_failed(self, job_id: str) -> dict:
        """The status once the worker has built the job (or failed to); raises its user error."""
        st = self.status(job_id)
        if st["status"] == "failed" and st.get("error"):
            raise error_from_dict(st["error"], "job failed")
        return st

    def result(self, job_id: str) -> dict:
        folder = self.folder(job_id)
        st = self.status(job_id)
        if st["status"] == "interrupted":
            raise ConflictError(f"job {job_id} was interrupted", f"resume it: POST /v1/jobs/{job_id}/resume")
        if st["status"] in ACTIVE:
            err = ConflictError(f"run {job_id} is still {st['status']}", "wait() for it or stop() it first")
            err.code = "training_failed"   # the same code as LocalRun.result()'s TrainingError
            raise err
        doc = read_json(folder / "result.json")
        if "error" in doc:
            raise error_from_dict(doc["error"], "job failed")
        return doc

    def close(self) -> None:
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.terminate()
