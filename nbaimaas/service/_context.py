"""What every route needs, held by the app (``app.state.ctx``), never by a module global."""

from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import Request

from ..errors import UserError
from ..names import check_model_name, parse_ref
from .batcher import Batchers
from ._jobs import JobStore
from .wire import (ARRAY_ID, UnsupportedMediaError, decode_inline, decode_npy, encode_npy)

__all__ = ["ServiceContext", "get_ctx", "check_ref", "check_name", "json_body", "to_thread"]


@dataclass
class ServiceContext:
    store: Path
    backend: Any                 # LocalBackend on the store: registry, model cache, catalogs
    jobs: JobStore
    batchers: Batchers
    settings: dict = field(default_factory=dict)

    def array_path(self, array_id: str) -> Path:
        from ..engine.store import inside

        if not ARRAY_ID.fullmatch(array_id):
            raise UserError(f"invalid array id {array_id!r}")
        return inside(self.store, "arrays", f"{array_id}.npy")

    def save_array(self, array: np.ndarray) -> str:
        from ..engine.store import atomic_write_bytes

        array_id = "arr-" + secrets.token_hex(12)
        atomic_write_bytes(self.array_path(array_id), encode_npy(array))
        return array_id

    def load_array(self, array_id: str) -> np.ndarray:
        path = self.array_path(array_id)
        if not path.exists():
            from ..errors import NotFoundError

            raise NotFoundError(f"no uploaded array {array_id!r}", "upload it with POST /v1/arrays")
        return decode_npy(path.read_bytes())

    def inline(self, doc: Any) -> Any:
        return decode_inline(doc, self.load_array)


async def get_ctx(request: Request) -> ServiceContext:
    # async on purpose: FastAPI runs a plain-def dependency in its thread pool, a thread
    # hand-off (and a pool of threads under load) on every request just to read an attribute.
    return request.app.state.ctx


def check_ref(ref: str) -> str:
    """A strict NAME, NAME:VERSION or NAME@ALIAS, or a 400 before anything touches the store."""
    parse_ref(ref)
    return ref


def check_name(name: str) -> str:
    return check_model_name(name)


async def json_body(request: Request) -> dict:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise UnsupportedMediaError(f"expected application/json, got {kind or 'no content type'}")
    try:
        body = json.loads(await request.body())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"the body is not valid JSON: {err}") from None
    if not isinstance(body, dict):
        raise UserError("the body must be a JSON object")
    return body


async def to_thread(fn, *args, **kwargs):
    """Engine and SQLite work off the event loop, so one slow call never stalls the others."""
    return await asyncio.to_thread(fn, *args, **kwargs)
