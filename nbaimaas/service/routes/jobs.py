"""Training jobs: submit a TrainSpec, watch it (status, events), stop, resume, get the result.

Each job runs in its own worker process (see service.worker); these routes only read and write
the job's files and signal its worker.
"""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from ...specs import TrainSpec
from .._context import ServiceContext, get_ctx, json_body
from ...engine.store import read_events
from .._jobs import TERMINAL
from ..wire import NDJSON_TYPE, dumps

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

START_WAIT_S = 120.0       # data preparation and model building happen before "running"
MAX_WAIT_S = 60.0          # long polls (and each SSE connection) return at the latest after this
SSE_TYPE = "text/event-stream"
POLL_S = 0.05


async def _until_started(ctx: ServiceContext, job_id: str) -> dict:
    """The worker checks the job (data, model) before training: its user errors answer here."""
    deadline = time.monotonic() + START_WAIT_S
    while ctx.jobs.status(job_id)["status"] == "pending" and time.monotonic() < deadline:
        await asyncio.sleep(POLL_S)
    return ctx.jobs.started_or_failed(job_id)


@router.post("", status_code=201, summary="Submit a TrainSpec (JSON); the job runs in a worker")
async def submit(request: Request, ctx: ServiceContext = Depends(get_ctx)) -> dict:
    body = await json_body(request)
    spec = TrainSpec.from_dict(body.get("spec") or {})
    inline = body.get("inline")
    if inline is not None:
        ctx.inline(inline)          # malformed inline data or unknown array ids fail now
    job_id = ctx.jobs.submit(spec.to_dict(), inline)
    return await _until_started(ctx, job_id)


@router.get("", summary="Every job with its status")
async def list_jobs(ctx: ServiceContext = Depends(get_ctx)) -> list:
    return ctx.jobs.list()


@router.get("/{job_id}", summary="A job's status; ?wait=S waits up to S seconds for it to end")
async def status(job_id: str, wait: float = Query(0, ge=0), ctx: ServiceContext = Depends(get_ctx)) -> dict:
    deadline = time.monotonic() + min(wait, MAX_WAIT_S)
    st = ctx.jobs.status(job_id)
    while st["status"] not in TERMINAL and time.monotonic() < deadline:
        await asyncio.sleep(POLL_S * 2)
        st = ctx.jobs.status(job_id)
    return st


@router.post("/{job_id}/stop", summary="Stop at the next batch boundary, keeping the best checkpoint")
async def stop(job_id: str, ctx: ServiceContext = Depends(get_ctx)) -> dict:
    return ctx.jobs.stop(job_id)


@router.post("/{job_id}/resume", summary="Continue a stopped, failed or interrupted job")
async def resume(job_id: str, ctx: ServiceContext = Depends(get_ctx)) -> dict:
    ctx.jobs.resume(job_id)
    return await _until_started(ctx, job_id)


@router.get("/{job_id}/result", summary="The TrainResult of a finished job")
async def result(job_id: str, ctx: ServiceContext = Depends(get_ctx)) -> dict:
    return ctx.jobs.result(job_id)


@router.get("/{job_id}/events",
            summary="Events after ?after=SEQ: JSON lines (long poll with ?wait=S), or server-sent events",
            description="With `Accept: text/event-stream` the events come as SSE (`id:` is the "
                        "sequence number, so a reconnecting EventSource resumes after "
                        "`Last-Event-ID`), following the job for up to a minute at a time and "
                        "ending with `event: end` once the job has finished.",
            response_class=StreamingResponse)
async def events(job_id: str, request: Request, after: int = -1, wait: float = Query(0, ge=0),
                 follow: bool = False, ctx: ServiceContext = Depends(get_ctx)):
    path = ctx.jobs.folder(job_id) / "events.jsonl"     # unknown job: 404 before streaming
    if SSE_TYPE in request.headers.get("accept", ""):
        last = request.headers.get("last-event-id", "")
        after = max(after, int(last)) if last.isdigit() else after
        stream = _new_events(ctx, job_id, path, after, min(wait or MAX_WAIT_S, MAX_WAIT_S), True)
        return StreamingResponse(_as_sse(stream), media_type=SSE_TYPE,
                                 headers={"Cache-Control": "no-cache"})
    stream = _new_events(ctx, job_id, path, after, min(wait, MAX_WAIT_S), follow)
    return StreamingResponse(_as_json_lines(stream), media_type=NDJSON_TYPE)


async def _new_events(ctx, job_id, path, after, wait, follow):
    """Events after ``after``: what is there, then (when nothing is, or when following) what
    comes, until the job ends (then one ``None``) or ``wait`` runs out."""
    deadline = time.monotonic() + wait
    while True:
        finished = ctx.jobs.status(job_id)["status"] in TERMINAL   # before reading: none missed
        new = read_events(path, after)
        for event in new:
            yield event
            after = event["seq"]
        if finished:
            yield None
            return
        if time.monotonic() >= deadline or (new and not follow):
            return
        await asyncio.sleep(POLL_S * 2)


async def _as_json_lines(stream):
    async for event in stream:
        if event is not None:
            yield dumps(event) + "\n"


async def _as_sse(stream):
    async for event in stream:
        if event is None:
            yield "event: end\ndata: {}\n\n"
        else:
            yield f"id: {event['seq']}\nevent: {event['kind']}\ndata: {dumps(event)}\n\n"
