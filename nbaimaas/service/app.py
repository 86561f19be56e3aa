"""The app factory: ``create_app(store_dir)`` -> a FastAPI app over the engine in that store.

All configuration lives on the app (``app.state.ctx``), none in module globals, so tests can
build several apps over several stores in one process.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI

from .. import __version__
from ._context import ServiceContext
from ._errors import JSONResponse, install_error_handlers
from ._jobs import JobStore
from ._predicting import predict_batch
from ._security import LOOPBACK_HOSTS, BodyLimit, Guard, GuardMiddleware, Tokens, load_tokens
from .batcher import Batchers
from .routes import ROUTERS
from .routes.predict import PredictFastPath

__all__ = ["create_app", "DEFAULT_MAX_BODY"]

DEFAULT_MAX_BODY = 64 * 2**20

DESCRIPTION = """The nbaimaas model service: the registry, training jobs and prediction.

Every route but `/v1/health` (and this description) needs `Authorization: Bearer <token>`;
the admin token is in the store's `token` file, a read-only token (GET routes and predict) in
`token.predict`. Errors are JSON `{code, message, hint}`.
"""


def create_app(store_dir: str | os.PathLike | None = None, *, tokens: Tokens | dict | None = None,
               max_body: int = DEFAULT_MAX_BODY, allowed_hosts: set[str] | None = None,
               max_batch: int = 64, max_wait: float = 0.002, max_queue: int = 256,
               python: str | None = None, rate_limit: float | None = None) -> FastAPI:
    """A service over the store at ``store_dir`` (default: the usual nbaimaas home).

    ``tokens``: ``Tokens(admin, predict)`` or ``{"admin": ..., "predict": ...}``; default: the
    store's token files, created (0600) on first start. ``allowed_hosts``: Host header values
    accepted besides the loopback names (``{"*"}`` accepts any). ``python``: the interpreter
    that runs job workers (default: this one). ``rate_limit``: requests a second allowed per
    token (bursts of twice that), answered 429 with Retry-After beyond; default: no limit.
    """
    from ..backends.local import LocalBackend
    from ..engine.store import home

    store = home(store_dir)
    tokens = _tokens(tokens, store)
    backend = LocalBackend(store)
    jobs = JobStore(store, python)
    jobs.recover()      # jobs whose worker died with the previous server become "interrupted"
    batchers = Batchers(lambda ref, items: predict_batch(backend.cache, ref, items),
                        max_batch=max_batch, max_wait=max_wait, max_queue=max_queue)

    app = _ServiceApp(title="nbaimaas", version=__version__, description=DESCRIPTION,
                  default_response_class=JSONResponse, redoc_url=None)
    app.state.ctx = ServiceContext(store, backend, jobs, batchers,
                                   {"max_body": max_body, "hosts": sorted(_hosts(allowed_hosts))})
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    # Host, token and rate limit, then body size (add_middleware wraps: the last added runs first).
    guard = Guard(_hosts(allowed_hosts), tokens, rate_limit)
    app.add_middleware(BodyLimit, max_body=max_body)
    app.add_middleware(GuardMiddleware, guard=guard)
    app.door = PredictFastPath(app.state.ctx, guard, max_body)
    app.router.on_shutdown.append(batchers.close)
    return app


class _ServiceApp(FastAPI):
    """FastAPI with the predict fast door in front of its whole middleware stack: the common
    predict request skips FastAPI's own error, telemetry and body layers (a fifth of its cost
    on LeNet), and the door applies the same Guard and body limit itself."""

    door: PredictFastPath | None = None

    async def __call__(self, scope, receive, send) -> None:
        call = self.door.call(scope) if self.door is not None else None
        if call is None:
            return await super().__call__(scope, receive, send)
        await self.door.serve(call, scope, receive, send)


def _tokens(tokens, store: Path) -> Tokens:
    if tokens is None:
        return load_tokens(store)
    if isinstance(tokens, dict):
        return Tokens(tokens["admin"], tokens.get("predict"))
    return tokens


def _hosts(extra: set[str] | None) -> frozenset[str]:
    return LOOPBACK_HOSTS | frozenset(extra or ())
