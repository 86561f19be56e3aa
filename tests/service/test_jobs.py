"""Jobs in worker processes: stream, stop, interrupted by a restart, resumed; a real server too."""

from __future__ import annotations

import json
import os
import time

import httpx
import pytest

from nbaimaas.backends.client import ServiceClient
from nbaimaas.errors import ServiceUnavailable, TrainingError
from nbaimaas.specs import TrainSpec

from .conftest import BASE, kill_quietly, make_client

# Long enough to be caught mid-run, short enough to finish after a resume.
MEDIUM = {"data": {"name": "digits", "limit": 300}, "epochs": 8, "batch_size": 8, "name": "med"}


def _until(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_events_long_poll_and_stop_keeps_best(service, admin, app_client, store):
    client, _ = app_client
    run = service.start_training(TrainSpec.from_dict({**MEDIUM, "epochs": 500}))
    status = json.loads((store / "jobs" / run.id / "status.json").read_text())
    assert status["pid"] != os.getpid()          # trained in a worker, never in the server
    # long poll: returns as soon as an epoch has ended
    seen = -1
    while True:
        events = run.events(seen, timeout=5)
        seen = events[-1].seq if events else seen
        if any(e.kind == "EpochEnded" for e in events):
            break
    r = client.get(f"/v1/jobs/{run.id}/events", params={"after": seen, "wait": 0.2}, headers=admin)
    assert r.headers["content-type"].startswith("application/x-ndjson")
    run.stop()
    result = run.wait(60)
    assert run.status == "stopped" and result.status == "stopped"
    assert result.model == "med:1" and "kept the best checkpoint" in result.message
    assert run.events()[-1].status == "stopped"


def _sse_messages(text: str) -> list[dict]:
    """SSE text -> one {field: value} per message (blank-line separated)."""
    return [dict(line.split(": ", 1) for line in block.splitlines())
            for block in text.strip().split("\n\n")]


def test_events_as_server_sent_events(service, admin, app_client):
    from .conftest import TINY

    client, _ = app_client
    run = service.start_training(TrainSpec.from_dict(TINY))
    run.wait(120)
    url = f"/v1/jobs/{run.id}/events"
    plain = [json.loads(line) for line in client.get(url, headers=admin).text.splitlines()]
    sse = {**admin, "Accept": "text/event-stream"}
    r = client.get(url, headers=sse)
    assert r.headers["content-type"].startswith("text/event-stream")
    messages = _sse_messages(r.text)
    assert messages[-1] == {"event": "end", "data": "{}"}        # the job is over: do not reconnect
    assert [(m["id"], m["event"], json.loads(m["data"])) for m in messages[:-1]] == \
        [(str(e["seq"]), e["kind"], e) for e in plain]
    # a reconnecting EventSource sends the last id it saw and gets only what came after
    middle = plain[len(plain) // 2]["seq"]
    again = _sse_messages(client.get(url, headers={**sse, "Last-Event-ID": str(middle)}).text)
    assert [m.get("id") for m in again[:-1]] == [str(e["seq"]) for e in plain if e["seq"] > middle]


def test_restart_marks_interrupted_and_resume_completes(store):
    client, app = make_client(store)
    with client:
        service = ServiceClient(BASE, home=store, client=client)
        run = service.start_training(TrainSpec.from_dict(MEDIUM))
        _until(lambda: any(e.kind == "Checkpointed" for e in run.events(-1)))
        pid = json.loads((store / "jobs" / run.id / "status.json").read_text())["pid"]
        kill_quietly(pid)                       # the worker dies as with its server
        _until(lambda: app.state.ctx.jobs._procs[run.id].poll() is not None)
    client, app = make_client(store)            # "restart": a new app on the same store
    with client:
        service = ServiceClient(BASE, home=store, client=client)
        again = service.get_run(run.id)
        assert again.status == "interrupted" and again.done
        assert again.events()[-1].status == "interrupted"
        with pytest.raises(TrainingError, match="interrupted"):
            again.result()
    # (resuming is checked over a real socket in test_real_server_sigkill_restart_resume)


def test_unreachable_service():
    sc = ServiceClient("http://127.0.0.1:9", token="x" * 40)
    with pytest.raises(ServiceUnavailable, match="cannot reach nbaimaas at http://127.0.0.1:9"):
        sc.datasets()


def test_mock_transport_seam():
    def handler(request: httpx.Request):
        assert request.headers["authorization"] == "Bearer t0ken"
        return httpx.Response(404, json={"code": "not_found", "message": "no model named 'x'", "hint": None})

    sc = ServiceClient("http://svc", token="t0ken", transport=httpx.MockTransport(handler))
    from nbaimaas.errors import NotFoundError
    with pytest.raises(NotFoundError, match="no model named 'x'"):
        sc.model("x")


def test_real_server_sigkill_restart_resume(tmp_path):
    """Train over a real socket, SIGKILL the server mid-run, restart it: interrupted, then resumed."""
    from nbaimaas.service.launch import serve_in_background

    store = tmp_path / "store"
    url, proc = serve_in_background(store)
    try:
        sc = ServiceClient(url, home=store)
        run = sc.start_training(TrainSpec.from_dict({**MEDIUM, "epochs": 30}))
        _until(lambda: any(e.kind == "Checkpointed" for e in run.events(-1, timeout=1)))
        proc.kill()
        proc.wait(10)
        _until(lambda: not _worker_alive(store, run.id), timeout=10)
        url, proc = serve_in_background(store)
        sc = ServiceClient(url, home=store)
        assert sc.get_run(run.id).status == "interrupted"
        resumed = sc.resume(run.id)
        result = resumed.wait(120)
        assert result.status == "completed" and result.epochs_run == 30
        events = resumed.events()
        assert [e.seq for e in events] == list(range(len(events)))
        assert [e.status for e in events if e.kind == "RunEnded"] == ["interrupted", "completed"]
        assert [e for e in events if e.kind == "RunStarted"][-1].resumed_from_epoch >= 1
        assert sc.model("med").version == 1            # the registry is intact
    finally:
        proc.kill()


def _worker_alive(store, job_id) -> bool:
    from nbaimaas.service._jobs import lock_held

    return lock_held(store / "jobs" / job_id / "lock")


def test_a_worker_that_dies_after_its_run_ended_keeps_the_run_status(tmp_path):
    """The run wrote RunEnded, then its worker died before the final status: not 'interrupted'."""
    from nbaimaas.engine.store import append_event, atomic_write_json, read_events
    from nbaimaas.service._jobs import JobStore

    jobs = JobStore(tmp_path)
    job_id = "run-20260101-120000-abcdef"
    folder = jobs.root / job_id
    folder.mkdir()
    atomic_write_json(folder / "status.json", {"id": job_id, "status": "running"})
    append_event(folder / "events.jsonl", {"kind": "RunEnded", "run_id": job_id, "seq": 0, "time": 0.0,
                                           "status": "completed", "metrics": {}, "model": None,
                                           "message": ""})
    assert jobs.status(job_id)["status"] == "completed"
    assert len(read_events(folder / "events.jsonl")) == 1      # no second, contradictory ending
