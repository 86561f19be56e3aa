"""Predict: raw inputs in (JSON or .npy), labels and probabilities (or values) out, micro-batched."""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends, Query, Request

from ...errors import UserError
from ...specs import PredictRequest
from .._context import ServiceContext, check_ref, get_ctx, to_thread
from .._predicting import PredictItem
from ..wire import NPY_TYPE, UnsupportedMediaError, decode_npy, from_jsonable

router = APIRouter(prefix="/v1/models", tags=["predict"])


@router.post("/{ref}/predict",
             summary="Predict with NAME, NAME:VERSION or NAME@ALIAS",
             description='JSON `{"inputs": [...], "top_k": 1, "horizon": null}`, or an `.npy` body '
                         f"(`{NPY_TYPE}`) with `?top_k=&horizon=`. Works with the predict token.")
async def predict(ref: str, request: Request, top_k: int = Query(1, ge=1), horizon: int | None = None,
                  ctx: ServiceContext = Depends(get_ctx)) -> dict:
    check_ref(ref)
    inputs, top_k, horizon = await _read(request, top_k, horizon)
    PredictRequest(model=ref, top_k=top_k, horizon=horizon)   # the same checks as in process
    version = await to_thread(ctx.backend.registry.resolve, ref)
    prediction = await ctx.batchers.submit(version.ref, PredictItem(inputs, horizon))
    return prediction.to_dict()


async def _read(request: Request, top_k: int, horizon: int | None):
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    if kind == NPY_TYPE:
        return decode_npy(body), top_k, horizon
    if kind != "application/json":
        # Anything else, pickle included, is never parsed.
        raise UnsupportedMediaError(f"predict reads application/json or {NPY_TYPE}, got {kind or 'nothing'}")
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"the body is not valid JSON: {err}") from None
    if not isinstance(doc, dict) or "inputs" not in doc:
        raise UserError('the body must be {"inputs": [...]}')
    return _inputs(doc["inputs"]), doc.get("top_k", top_k), doc.get("horizon", horizon)


def _inputs(raw):
    """Plain lists (numbers or strings), or the tagged forms of wire.to_jsonable."""
    if isinstance(raw, dict):
        return from_jsonable(raw)
    if isinstance(raw, list) and raw and all(isinstance(v, str) for v in raw):
        return raw
    import numpy as np

    try:
        return np.asarray(raw, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise UserError(f"inputs must be numbers of one shape or strings: {err}") from None
