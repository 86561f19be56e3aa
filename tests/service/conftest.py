"""Service fixtures: an app in process (TestClient), a client on it, and a real server process."""

from __future__ import annotations

import os
import signal

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from nbaimaas.backends.client import ServiceClient  # noqa: E402
from nbaimaas.service.app import create_app  # noqa: E402

BASE = "http://127.0.0.1"
TINY = {"data": {"name": "digits", "limit": 300}, "model": {"arch": "mlp"}, "epochs": 2,
        "batch_size": 32}


def make_client(store, **app_options) -> tuple[TestClient, object]:
    app = create_app(store, **app_options)
    return TestClient(app, base_url=BASE, raise_server_exceptions=False), app


@pytest.fixture
def store(tmp_path):
    return tmp_path / "store"


@pytest.fixture
def app_client(store):
    """(TestClient without a token, the app); the admin token is in ``store/token``."""
    client, app = make_client(store)
    with client:
        yield client, app
    app.state.ctx.jobs.close()


@pytest.fixture
def admin(store, app_client):
    client, _ = app_client
    token = (store / "token").read_text().strip()
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def service(store, app_client):
    """A ServiceClient on the in-process app (token read from the shared store)."""
    client, _ = app_client
    sc = ServiceClient(BASE, home=store, client=client)
    return sc


@pytest.fixture(scope="session")
def live_server(tmp_path_factory):
    """``nbaimaas serve`` in a subprocess on a free loopback port: (url, process, store)."""
    from nbaimaas.service.launch import serve_in_background

    store = tmp_path_factory.mktemp("live-store")
    url, proc = serve_in_background(store, port=0)
    yield url, proc, store
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except Exception:  # noqa: BLE001
            proc.kill()


def kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
