"""Health, the catalogs (datasets, architectures), data inspection and array uploads."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from ... import __version__
from ...specs import DataSpec, ModelSpec, TrainSpec
from .._context import ServiceContext, get_ctx, json_body, to_thread
from ..wire import NPY_TYPE, UnsupportedMediaError, decode_npy, to_jsonable

router = APIRouter(prefix="/v1")


@router.get("/health", tags=["service"], summary="Is the service up? (no token needed)")
async def health() -> dict:
    return {"status": "ok", "service": "nbaimaas", "version": __version__}


@router.get("/stats", tags=["service"], summary="Prediction batching per model version",
            description="For each exact version predicted since the service started: forward passes, "
                        "requests served, passes run on the event loop, waits for announced requests, "
                        "the largest batch, recent milliseconds per pass by batch size in rows, and the "
                        "sizes moved to the inference thread for good.")
async def stats(ctx: ServiceContext = Depends(get_ctx)) -> dict:
    return {"predict": ctx.batchers.stats()}


@router.get("/datasets", tags=["catalog"], summary="The built-in datasets")
async def datasets(ctx: ServiceContext = Depends(get_ctx)) -> list:
    return [d.to_dict() for d in await to_thread(ctx.backend.datasets)]


@router.get("/architectures", tags=["catalog"], summary="The architecture catalog")
async def architectures(task: str | None = None, modality: str | None = None,
                        ctx: ServiceContext = Depends(get_ctx)) -> list:
    return [a.to_dict() for a in await to_thread(ctx.backend.architectures, task, modality)]


@router.post("/arrays", status_code=201, tags=["data"],
             summary="Upload one array (.npy, read with allow_pickle=False); returns its id")
async def upload_array(request: Request, ctx: ServiceContext = Depends(get_ctx)) -> dict:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    array = decode_npy(body)       # refuses pickle whatever the content type says
    if kind != NPY_TYPE:
        raise UnsupportedMediaError(f"arrays are uploaded as {NPY_TYPE}, got {kind or 'nothing'}")
    array_id = await to_thread(ctx.save_array, array)
    return {"id": array_id, "shape": list(array.shape), "dtype": array.dtype.str}


def _data(body: dict) -> DataSpec | None:
    raw = body.get("data")
    return None if raw is None else DataSpec.from_dict(raw)


@router.post("/data/describe", tags=["data"], summary="Task, shapes, classes and counts of data")
async def describe(request: Request, ctx: ServiceContext = Depends(get_ctx)) -> dict:
    body = await json_body(request)
    return await to_thread(ctx.backend.describe_data, _data(body) or DataSpec(), ctx.inline(body.get("inline")))


@router.post("/data/sample", tags=["data"], summary="Raw test inputs and their labels")
async def sample(request: Request, ctx: ServiceContext = Depends(get_ctx)) -> dict:
    body = await json_body(request)
    out = await to_thread(ctx.backend.sample, _data(body) or DataSpec(), body.get("split", "test"),
                          int(body.get("n", 16)), ctx.inline(body.get("inline")))
    return {"inputs": to_jsonable(out["inputs"]), "labels": to_jsonable(out["labels"]), "info": out["info"]}


@router.post("/summary", tags=["models"], summary="Layers, output shapes and parameter counts")
async def summary(request: Request, ctx: ServiceContext = Depends(get_ctx)) -> dict:
    body = await json_body(request)
    model = ModelSpec.from_dict(body.get("model") or {})
    out = await to_thread(ctx.backend.summary, model, _data(body) or DataSpec(), ctx.inline(body.get("inline")))
    return out.to_dict()


@router.post("/lr-find", tags=["jobs"], summary="The learning-rate range test")
async def lr_find(request: Request, ctx: ServiceContext = Depends(get_ctx)) -> Any:
    body = await json_body(request)
    spec = TrainSpec.from_dict(body.get("spec") or {})
    # A short sweep (a few hundred steps); it runs in a thread rather than a job worker.
    return await to_thread(ctx.backend.lr_find, spec, ctx.inline(body.get("inline")))
