"""Predict: raw inputs in (JSON or .npy), labels and probabilities (or values) out, micro-batched.

Two doors to one implementation (``run_predict``): the FastAPI route (documented in /docs, and
what every unusual request goes through) and ``PredictFastPath``, a plain ASGI handler in front
of the whole app that serves the common request (``?top_k=&horizon=`` at most, a JSON or .npy
body) without FastAPI's middleware stack, routing, dependency solving and exception wrappers: at
thousands of requests a second those cost more than the model's forward pass. The door applies
the app's own ``Guard`` and body limit itself, so both doors give the same answers.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Depends, Query, Request

from ...errors import NbaimaasError, UserError
from ...specs import PredictRequest
from .._context import ServiceContext, check_ref, get_ctx, to_thread
from .._errors import JSONResponse, error_response
from .._predicting import PredictItem
from .._security import Guard, body_error, header, reply, too_large
from ..wire import NPY_TYPE, PayloadTooLargeError, UnsupportedMediaError, decode_npy, dumps, from_jsonable

router = APIRouter(prefix="/v1/models", tags=["predict"])
log = logging.getLogger("nbaimaas.service")

__all__ = ["router", "run_predict", "PredictFastPath"]


@router.post("/{ref}/predict",
             summary="Predict with NAME, NAME:VERSION or NAME@ALIAS",
             description='JSON `{"inputs": [...], "top_k": 1, "horizon": null}`, or an `.npy` body '
                         f"(`{NPY_TYPE}`) with `?top_k=&horizon=`. Works with the predict token.")
async def predict(ref: str, request: Request, top_k: int = Query(1, ge=1), horizon: int | None = None,
                  ctx: ServiceContext = Depends(get_ctx)) -> dict:
    prediction = await run_predict(ctx, ref, _kind(request.headers.get("content-type", "")),
                                   request.body, top_k, horizon)
    # A rendered response: FastAPI would otherwise walk and validate the dict once more.
    return JSONResponse(prediction.to_dict())


async def run_predict(ctx: ServiceContext, ref: str, kind: str, read_body: Callable[[], Awaitable[bytes]],
                      top_k: int, horizon: int | None):
    check_ref(ref)
    cache = ctx.backend.cache
    # Kept while the registry is unchanged (a few microseconds); SQLite off the loop otherwise.
    version = cache.resolved(ref) or await to_thread(cache.resolve, ref)
    batcher = ctx.batchers.get(version.ref)
    with batcher.expect() as slot:      # the batcher may wait for this one while its body arrives
        inputs, top_k, horizon = _read(kind, await read_body(), top_k, horizon)
        PredictRequest(model=ref, top_k=top_k, horizon=horizon)   # the same checks as in process
        return await slot.submit(PredictItem(inputs, horizon))


def _kind(content_type: str) -> str:
    return content_type.split(";")[0].strip().lower()


def _read(kind: str, body: bytes, top_k: int, horizon: int | None):
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


# -- the fast door ------------------------------------------------------------------------------

_PATH = re.compile(r"/v1/models/([^/]+)/predict")
_QUERY = re.compile(rb"(?:(?:top_k|horizon)=[1-9][0-9]{0,8})(?:&(?:top_k|horizon)=[1-9][0-9]{0,8})?")
_KINDS = (NPY_TYPE, "application/json")
_JSON_HEADERS = [(b"content-type", b"application/json")]


class PredictFastPath:
    """``POST /v1/models/{ref}/predict`` without the framework. ``call(scope)`` says whether the
    door serves a request: anything it is not sure about (odd query strings, other content
    types) goes to the app, which answers it with the same checks."""

    def __init__(self, ctx: ServiceContext, guard: Guard, max_body: int):
        self.ctx = ctx
        self.guard = guard
        self.max_body = max_body

    def call(self, scope) -> tuple[str, str, int, int | None] | None:
        """(ref, kind, top_k, horizon) of a request this door serves, else None."""
        if scope["type"] != "http" or scope["method"] != "POST":
            return None
        match = _PATH.fullmatch(scope["path"])
        query = scope.get("query_string", b"")
        kind = _kind(header(scope, b"content-type") or "")
        if match is None or kind not in _KINDS or (query and not _QUERY.fullmatch(query)):
            return None
        params = dict(p.split(b"=") for p in query.split(b"&")) if query else {}
        if len(params) != query.count(b"&") + bool(query):        # a parameter given twice
            return None
        horizon = int(params[b"horizon"]) if b"horizon" in params else None
        return match.group(1), kind, int(params.get(b"top_k", 1)), horizon

    async def serve(self, call, scope, receive, send) -> None:
        refused = self.guard.refusal(scope) or too_large(self.max_body, header(scope, b"content-length"))
        if refused is not None:
            return await reply(send, refused)
        ref, kind, top_k, horizon = call

        async def read_body() -> bytes:
            chunks, seen = [], 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise _Gone
                chunks.append(message.get("body", b""))
                seen += len(chunks[-1])
                if seen > self.max_body:     # a chunked body has no Content-Length to check
                    raise body_error(self.max_body)
                if not message.get("more_body", False):
                    return b"".join(chunks)

        try:
            prediction = await run_predict(self.ctx, ref, kind, read_body, top_k, horizon)
            body = dumps(prediction.to_dict()).encode()
        except _Gone:
            return
        except PayloadTooLargeError as err:     # the rest of the body is never read: close
            return await reply(send, err)
        except NbaimaasError as err:
            return await error_response(err)(scope, receive, send)
        except Exception as err:  # noqa: BLE001 - the traceback to the log, never to the client
            log.error("internal error on POST %s", scope["path"], exc_info=err)
            body = {"code": "error", "message": "internal error in the nbaimaas service",
                    "hint": "see the service's log"}
            return await JSONResponse(body, status_code=500)(scope, receive, send)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode()), *_JSON_HEADERS]})
        await send({"type": "http.response.body", "body": body})


class _Gone(Exception):
    """The client went away while its body was read."""
