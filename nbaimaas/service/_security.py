"""Secure by default: bearer tokens, a Host allowlist, an optional rate limit and a body size limit.

``Guard`` holds the checks made before anything reads a request's body, in order: the Host
allowlist (DNS rebinding: a page on evil.example resolving to 127.0.0.1 still sends
``Host: evil.example``), the bearer token (every route but health and the API description),
the rate limit (off unless asked for: 429 with Retry-After per token). ``GuardMiddleware``
applies it in front of the framework, and the predict fast door applies the same Guard itself.
``BodyLimit`` answers 413 from Content-Length before reading, and by counting while streaming.

Tokens: ``<store>/token`` (admin: everything) and ``<store>/token.predict`` (read-only: GET
routes and predict), created on first start with mode 0600. Only the Authorization header is
read (never a query string, which ends up in logs), compared in constant time, never logged.
"""

from __future__ import annotations

import hmac
import math
import os
import time
import re
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from ..errors import AuthError, NbaimaasError, RateLimited, UserError
from ._errors import error_body, status_for
from .wire import ForbiddenError, PayloadTooLargeError

__all__ = ["Tokens", "load_tokens", "Guard", "GuardMiddleware", "BodyLimit", "too_large", "body_error",
           "reply", "header", "LOOPBACK_HOSTS", "PUBLIC_PATHS"]

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})
PUBLIC_PATHS = frozenset({"/v1/health", "/docs", "/docs/oauth2-redirect", "/openapi.json"})
_PREDICT_ROUTE = re.compile(r"/v1/models/[^/]+/predict")
_READ_METHODS = ("GET", "HEAD")


@dataclass(frozen=True)
class Tokens:
    admin: str
    predict: str | None = None

    def __repr__(self) -> str:  # never show a token, even in a debugger or a log line
        return "Tokens(admin=***, predict=***)"

    def role(self, given: str) -> str | None:
        """'admin', 'predict' or None; both compared in constant time."""
        role = None
        if hmac.compare_digest(given.encode(), self.admin.encode()):
            role = "admin"
        if self.predict and hmac.compare_digest(given.encode(), self.predict.encode()):
            role = role or "predict"
        return role


def load_tokens(store: Path) -> Tokens:
    """The store's tokens, created (0600) on first start."""
    return Tokens(_read_or_create(store / "token"), _read_or_create(store / "token.predict"))


def _read_or_create(path: Path) -> str:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if os.name == "posix" and stat.S_IMODE(path.stat().st_mode) & 0o077:
            os.chmod(path, 0o600)   # someone loosened it: tighten rather than serve with it
        token = path.read_text().strip()
        if len(token) < 16:
            raise UserError(f"the token file {path} is empty or too short", "delete it to get a new one")
        return token
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as f:
        if hasattr(os, "fchmod"):
            os.fchmod(f.fileno(), 0o600)
        f.write(token + "\n")
    return token


async def reply(send, err: NbaimaasError) -> None:
    """Answer an error straight to the ASGI send (no framework), and close the connection."""
    status = status_for(err)
    headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    if hasattr(err, "retry_after"):
        headers.append((b"retry-after", str(err.retry_after).encode()))
    body = error_body(err)
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def header(scope, name: bytes) -> str | None:
    """One request header from an ASGI scope, or None."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


class Guard:
    """The checks every request passes before anything reads its body, in order: the Host
    allowlist, the bearer token, the rate limit. One function, ``refusal(scope)``, shared by
    the middleware in front of the framework and by the predict fast door, so both doors give
    the same answers.
    """

    def __init__(self, hosts: frozenset[str], tokens: Tokens, rate: float | None = None):
        self.hosts = frozenset(h.lower() for h in hosts)
        self.tokens = tokens
        self.rate = rate
        self.burst = max(1.0, 2 * rate) if rate else 0.0
        self._buckets: dict[str, tuple[float, float]] = {}   # token -> (tokens left, last refill)

    def refusal(self, scope) -> NbaimaasError | None:
        """Why this request may not go on, or None. Spends one rate token when it may."""
        if "*" not in self.hosts and _strip_port((header(scope, b"host") or "").lower()) not in self.hosts:
            return UserError("this Host is not allowed", "connect with http://127.0.0.1:PORT")
        if scope["path"] in PUBLIC_PATHS:
            return None
        authorization = header(scope, b"authorization") or ""
        err = self._token(scope, authorization)
        if err is None and self.rate:
            wait = self._take(authorization)
            if wait:
                err = RateLimited(f"more than {self.rate:g} requests a second with this token",
                                  f"retry after {wait} s")
                err.retry_after = wait
        return err

    def _token(self, scope, authorization: str) -> NbaimaasError | None:
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return AuthError("this service needs a token",
                             "pass token= to ai.connect, set NBAIMAAS_TOKEN, or share the store")
        role = self.tokens.role(given.strip())
        if role is None:
            return AuthError("the token is not valid for this service")
        if role == "predict" and not (scope["method"] in _READ_METHODS or (
                scope["method"] == "POST" and _PREDICT_ROUTE.fullmatch(scope["path"]))):
            return ForbiddenError("the predict token may only predict and read",
                                  "use the admin token (the store's 'token' file)")
        return None

    def _take(self, key: str) -> int:
        """A token bucket per bearer token (only valid ones reach here, so the table stays
        tiny; the event loop is single-threaded, so no lock): 0 when a request may go now,
        else the whole seconds until one may."""
        now = time.monotonic()
        left, last = self._buckets.get(key, (self.burst, now))
        left = min(self.burst, left + (now - last) * self.rate)
        if left >= 1.0:
            self._buckets[key] = (left - 1.0, now)
            return 0
        self._buckets[key] = (left, now)
        return max(1, math.ceil((1.0 - left) / self.rate))


def _strip_port(host: str) -> str:
    if host.startswith("["):                      # [::1]:8765
        return host[:host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class GuardMiddleware:
    """The Guard in front of the framework: a refused request is answered without the app."""

    def __init__(self, app, guard: Guard):
        self.app = app
        self.guard = guard

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            err = self.guard.refusal(scope)
            if err is not None:
                return await reply(send, err)
        await self.app(scope, receive, send)


def too_large(max_body: int, declared: str | None) -> PayloadTooLargeError | None:
    """The 413 for a Content-Length over the limit (or not a number), before reading a byte."""
    if declared is not None and (not declared.isdigit() or int(declared) > max_body):
        return body_error(max_body)
    return None


def body_error(max_body: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"the request body is larger than the limit of {max_body / 2**20:g} MB",
                                "send less at once, or start the service with a larger --max-body")


class _TooLarge(PayloadTooLargeError):
    """Raised inside the app while it reads, so its error handler answers 413 itself."""


class BodyLimit:
    def __init__(self, app, max_body: int):
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        err = too_large(self.max_body, header(scope, b"content-length"))
        if err is not None:
            return await reply(send, err)
        seen, started = 0, False

        async def counting_receive():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_body:          # chunked bodies have no Content-Length to check
                err = body_error(self.max_body)
                raise _TooLarge(err.message, err.hint)
            return message

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await reply(send, body_error(self.max_body))
