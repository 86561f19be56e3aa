"""Every failure becomes JSON ``{code, message, hint}`` with the right status, never a traceback.

The ``code`` is the error class's own (``errors.ERRORS_BY_CODE``), so ServiceClient raises the
same exception a LocalBackend would have raised: a user mistake reads the same on both.
"""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from ..errors import (
    AuthError, ConflictError, DataError, IncompatibleError, NbaimaasError, NotFoundError,
    RateLimited, ServiceError, ServiceUnavailable, SpecError, TrainingError, UnknownNameError, UserError,
)
from .wire import dumps

__all__ = ["status_for", "error_response", "install_error_handlers", "JSONResponse"]

log = logging.getLogger("nbaimaas.service")

# First match wins, so subclasses come before their bases.
_STATUS: tuple[tuple[type, int], ...] = (
    (AuthError, 401), (ServiceUnavailable, 503), (RateLimited, 429), (ServiceError, 502),
    (NotFoundError, 404), (ConflictError, 409),
    (SpecError, 422), (UnknownNameError, 422), (DataError, 422), (IncompatibleError, 422),
    (UserError, 400), (TrainingError, 422),
)
RETRY_AFTER_S = 1


class JSONResponse(Response):
    """JSON that keeps NaN/Infinity (Python's json), so metrics round-trip exactly."""

    media_type = "application/json"

    def render(self, content) -> bytes:
        return dumps(content).encode("utf-8")


def status_for(err: NbaimaasError) -> int:
    explicit = getattr(err, "http_status", None)
    if isinstance(explicit, int):
        return explicit
    for cls, status in _STATUS:
        if isinstance(err, cls):
            return status
    return 500


def error_response(err: NbaimaasError, status: int | None = None) -> JSONResponse:
    status = status or status_for(err)
    headers = {}
    if status in (429, 503):
        headers["Retry-After"] = str(getattr(err, "retry_after", RETRY_AFTER_S))
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(err.to_dict(), status_code=status, headers=headers)


def error_body(err: NbaimaasError) -> bytes:
    return json.dumps(err.to_dict()).encode("utf-8")


async def _nbaimaas(request: Request, err: NbaimaasError) -> Response:
    return error_response(err)


async def _validation(request: Request, err: RequestValidationError) -> Response:
    first = err.errors()[0] if err.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    message = f"{where}: {first.get('msg', 'invalid value')}" if where else "invalid request"
    return error_response(SpecError(message), 422)


_HTTP_CODES = {404: "not_found", 405: "bad_request", 400: "bad_request"}


async def _http(request: Request, err: StarletteHTTPException) -> Response:
    code = _HTTP_CODES.get(err.status_code, "error")
    message = "no such route" if err.status_code == 404 else str(err.detail)
    body = {"code": code, "message": f"{message}: {request.method} {request.url.path}",
            "hint": "see /docs for the API"}
    return JSONResponse(body, status_code=err.status_code)


async def _internal(request: Request, err: Exception) -> Response:
    # The traceback goes to the server's log, never to the client.
    log.error("internal error on %s %s", request.method, request.url.path, exc_info=err)
    body = {"code": "error", "message": "internal error in the nbaimaas service",
            "hint": "see the service's log"}
    return JSONResponse(body, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(NbaimaasError, _nbaimaas)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _internal)
