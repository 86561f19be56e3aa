"""Run the service: in this process (``run_server``, what ``nbaimaas serve`` does) or as a child
process on a free port (``serve_in_background``, what ``ai.serve()`` and ``%aimaas_serve`` use).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import sys
import time

__all__ = ["run_server", "serve_in_background", "is_loopback", "READY_PREFIX"]

READY_PREFIX = "nbaimaas serving at "


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY on each accepted connection
    # only when sock.proto says TCP, and without it every response whose head and body leave in
    # two writes waits for the client's delayed ACK (Nagle): ~40 ms per request at low load.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)   # inherited by accepted sockets
    sock.bind((host.strip("[]"), port))
    return sock


def run_server(store: str | os.PathLike | None, host: str = "127.0.0.1", port: int = 8765,
               allowed_hosts: set[str] | None = None, max_body: int | None = None,
               rate_limit: float | None = None) -> None:
    """Bind first (so port 0 gets a real port), say where on stdout, then serve until stopped."""
    import uvicorn

    from .app import DEFAULT_MAX_BODY, create_app

    _torch_threads()

    app = create_app(store, allowed_hosts=(allowed_hosts or set()) | {host},
                     max_body=max_body or DEFAULT_MAX_BODY, rate_limit=rate_limit)
    sock = _bind(host, port)
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    url = f"http://{shown}:{sock.getsockname()[1]}"
    store_dir = app.state.ctx.store
    print(f"{READY_PREFIX}{url} (store {store_dir}; admin token in {store_dir / 'token'})", flush=True)
    # No access log: request lines are noise here, and nothing token-like may reach a log.
    config = uvicorn.Config(app, access_log=False, log_level="warning", proxy_headers=False,
                            server_header=False)
    uvicorn.Server(config).run(sockets=[sock])


def _torch_threads() -> None:
    """One torch thread unless NBAIMAAS_TORCH_THREADS says otherwise: requests are batched on
    one inference thread beside the event loop, and more intra-op threads only fight them (and
    the clients on the same machine) for the cores."""
    import torch

    torch.set_num_threads(max(1, int(os.environ.get("NBAIMAAS_TORCH_THREADS", "1"))))


def serve_in_background(store: str | os.PathLike | None = None, port: int = 0, host: str = "127.0.0.1",
                        timeout: float = 60.0) -> tuple[str, subprocess.Popen]:
    """Start ``nbaimaas serve`` as a child process; return (url, process) once /v1/health answers."""
    from ..engine.store import home
    from ..paths import child_env

    root = home(store)
    log = open(root / "service.log", "ab")
    cmd = [sys.executable, "-m", "nbaimaas.cli", "serve", "--store", str(root), "--host", host,
           "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
                            env=child_env())
    log.close()
    try:
        url = _read_url(proc, timeout)
        _wait_healthy(url, proc, timeout)
    except BaseException:
        proc.kill()
        raise
    return url, proc


def _read_url(proc: subprocess.Popen, timeout: float) -> str:
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sel.select(timeout=0.2):
            line = proc.stdout.readline().decode(errors="replace")
            if line.startswith(READY_PREFIX):
                return line[len(READY_PREFIX):].split()[0]
            if not line and proc.poll() is not None:
                break
    raise _failed(proc, "did not start")


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise _failed(proc, "exited")
        try:
            if httpx.get(f"{url}/v1/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise _failed(proc, "did not answer /v1/health")


def _failed(proc, what: str):
    from ..errors import ServiceUnavailable

    return ServiceUnavailable(f"the nbaimaas service {what} (exit code {proc.poll()})",
                              "see service.log in the store")
