"""Attacks: path tricks, pickle payloads, malformed safetensors, huge bodies, tokens, Host, CORS."""

from __future__ import annotations

import json
import os
import pickle
import socket
import stat
import subprocess
import sys

import numpy as np
import pytest

from nbaimaas.service.wire import NPY_TYPE, check_safetensors, encode_npy
from nbaimaas.errors import DataError

from .conftest import make_client


class P:
    """Unpickling this would create the sentinel file (it must never appear)."""

    path = ""

    def __reduce__(self):
        return (open, (self.path, "w"))


def _pickled(path) -> bytes:
    P.path = str(path)
    return pickle.dumps(P(), protocol=2)


def _routes(app):
    """Every (method, path) of the app with placeholders filled."""
    fill = {"{ref}": "m", "{name}": "m", "{alias}": "a", "{job_id}": "run-20250101-000000-abcdef"}
    for path, ops in app.openapi()["paths"].items():
        for method in ops:
            for key, value in fill.items():
                path = path.replace(key, value)
            yield method.upper(), path


PUBLIC = {"/v1/health"}


def test_every_route_needs_a_token(app_client, store):
    client, app = app_client
    predict = (store / "token.predict").read_text().strip()
    checked = 0
    for method, path in _routes(app):
        if path in PUBLIC:
            continue
        assert client.request(method, path).status_code == 401, (method, path)
        bad = client.request(method, path, headers={"Authorization": "Bearer wrong-token-000000"})
        assert bad.status_code == 401 and bad.json()["code"] == "unauthorized"
        # the token in a query string is never read
        assert client.request(method, path, params={"token": predict}).status_code == 401
        with_predict = client.request(method, path, headers={"Authorization": f"Bearer {predict}"})
        if method == "GET" or path.endswith("/predict"):
            assert with_predict.status_code != 403, (method, path)
        else:
            assert with_predict.status_code == 403, (method, path)
            assert with_predict.json()["code"] == "forbidden"
        checked += 1
    assert checked >= 20
    assert client.get("/v1/health").status_code == 200


def test_token_files_are_private(app_client, store):
    for name in ("token", "token.predict"):
        assert stat.S_IMODE(os.stat(store / name).st_mode) == 0o600
        assert len((store / name).read_text().strip()) >= 32


@pytest.mark.parametrize("name", ["../../etc/passwd", "a/b", "%2e%2e%2f", "..", "A", "a b", "%2e%2e",
                                  "..%2f..%2fx", "a\\b", "-a", "a" * 64])
def test_bad_names_on_every_model_route(app_client, admin, store, name):
    client, _ = app_client
    before = set(os.listdir(store.parent))
    routes = [("GET", f"/v1/models/{name}"), ("GET", f"/v1/models/{name}/versions"),
              ("GET", f"/v1/models/{name}/download"), ("DELETE", f"/v1/models/{name}"),
              ("PUT", f"/v1/models/{name}/aliases/x"), ("DELETE", f"/v1/models/{name}/aliases/x"),
              ("POST", f"/v1/models/{name}"), ("POST", f"/v1/models/{name}/predict"),
              ("POST", f"/v1/models/{name}/evaluate"), ("GET", f"/v1/models?name={name}")]
    for method, path in routes:
        r = client.request(method, path, headers=admin, content=b"{}")
        assert 400 <= r.status_code < 500, (method, path, r.status_code)
        assert "Traceback" not in r.text
    assert set(os.listdir(store.parent)) == before
    assert os.listdir(store / "models") == []


def test_pickle_is_refused_and_never_loaded(app_client, admin, tmp_path):
    client, _ = app_client
    sentinel = tmp_path / "pwned"
    payload = _pickled(sentinel)
    for kind in ("application/octet-stream", NPY_TYPE, "application/json", "application/python-pickle"):
        for path in ("/v1/models/evil", "/v1/arrays", "/v1/models/evil/predict"):
            r = client.post(path, content=payload, headers={**admin, "Content-Type": kind})
            assert r.status_code in (400, 404, 415, 422), (path, kind, r.status_code)
            if path != "/v1/models/evil/predict":
                assert r.status_code in (415, 400), (path, kind)
    zipped = b"PK\x03\x04" + b"\0" * 100        # torch.save's zip format
    assert client.post("/v1/models/evil", content=zipped, headers=admin).status_code == 415
    obj = np.array([P()], dtype=object)
    import io
    buf = io.BytesIO()
    np.save(buf, obj, allow_pickle=True)
    r = client.post("/v1/arrays", content=buf.getvalue(), headers={**admin, "Content-Type": NPY_TYPE})
    assert r.status_code == 415
    assert not sentinel.exists()


def _safetensors(header: dict, data: bytes, length: int | None = None) -> bytes:
    raw = json.dumps(header).encode()
    return (len(raw) if length is None else length).to_bytes(8, "little") + raw + data


@pytest.mark.parametrize("body", [
    _safetensors({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8, length=2**40),
    b"\x10\0\0\0\0\0\0\0{not json at all",
    _safetensors({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 800]}}, b"\0" * 8),
    _safetensors({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8),
    _safetensors({"w": {"dtype": "X9", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8),
    _safetensors({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8),
    _safetensors({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, b"\0" * 8),
    _safetensors({"__metadata__": {"nbaimaas": "{}"}}, b""),
    b"short",
])
def test_malformed_safetensors(app_client, admin, body):
    client, _ = app_client
    r = client.post("/v1/models/evil", content=body, headers=admin)
    assert r.status_code in (400, 415, 422), r.text
    assert r.json()["code"] in ("bad_data", "unsupported_media")
    assert client.get("/v1/models", headers=admin).json() == []


def test_header_checks_directly():
    good = _safetensors({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8)
    assert "w" in check_safetensors(good)
    with pytest.raises(DataError, match="does not match"):
        check_safetensors(_safetensors({"w": {"dtype": "F64", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8))


def test_huge_bodies_get_413_without_being_read(store):
    client, app = make_client(store, max_body=1024)
    token = (store / "token").read_text().strip()
    auth = {"Authorization": f"Bearer {token}"}
    sent = []

    def body():
        for _ in range(200):
            sent.append(1)
            yield b"\0" * 2**20          # 200 MB if anyone read it all

    with client:
        r = client.post("/v1/arrays", content=body(), headers={**auth, "Content-Length": str(200 * 2**20)})
        assert r.status_code == 413 and r.json()["code"] == "too_large"
        r = client.post("/v1/arrays", content=encode_npy(np.zeros(1000)), headers={**auth, "Content-Type": NPY_TYPE})
        assert r.status_code == 413
        r = client.post("/v1/arrays", content=iter([b"\0" * 800, b"\0" * 800]), headers=auth)  # chunked
        assert r.status_code == 413
    assert len(sent) < 200


def test_foreign_host_is_rejected(app_client, admin):
    client, _ = app_client
    for host in ("evil.example", "127.0.0.1.evil.example", "localhost.attacker:8765"):
        r = client.get("/v1/models", headers={**admin, "Host": host})
        assert r.status_code == 400, host
    assert client.get("/v1/models", headers={**admin, "Host": "localhost:8765"}).status_code == 200
    assert client.get("/v1/models", headers={**admin, "Host": "[::1]:8765"}).status_code == 200


def test_no_cors(app_client, admin):
    client, _ = app_client
    r = client.options("/v1/models", headers={"Origin": "http://evil.example",
                                              "Access-Control-Request-Method": "GET"})
    assert r.status_code in (401, 405) and "access-control-allow-origin" not in r.headers
    r = client.get("/v1/models", headers={**admin, "Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in r.headers


def test_errors_are_json_never_tracebacks(app_client, admin):
    client, _ = app_client
    for method, path, kw in [("GET", "/v1/nope", {}), ("POST", "/v1/jobs", {"content": b"{"}),
                             ("POST", "/v1/jobs", {"json": {"spec": {"lr": -1}}}),
                             ("GET", "/v1/jobs/run-20250101-000000-abcdef", {}),
                             ("GET", "/v1/jobs/../../etc", {}), ("GET", "/v1/jobs/nope", {})]:
        r = client.request(method, path, headers=admin, **kw)
        assert 400 <= r.status_code < 500, (path, r.status_code)
        assert set(r.json()) >= {"code", "message"} and "Traceback" not in r.text


def test_serve_refuses_a_public_address_without_the_flag(tmp_path):
    r = subprocess.run([sys.executable, "-m", "nbaimaas.cli", "serve", "--host", "0.0.0.0",
                        "--store", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "--allow-remote" in r.stderr


def test_live_server_binds_loopback_and_a_raw_huge_body_gets_413(live_server):
    url, proc, store = live_server
    host, port = url.removeprefix("http://").rsplit(":", 1)
    assert host == "127.0.0.1"
    token = (store / "token").read_text().strip()
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall((f"POST /v1/arrays HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                   f"Content-Type: {NPY_TYPE}\r\nContent-Length: {200 * 2**20}\r\n\r\n").encode() + b"\0" * 4096)
        reply = s.recv(4096).decode(errors="replace")
    assert reply.startswith("HTTP/1.1 413"), reply[:200]


def test_rate_limit_answers_429_with_retry_after_per_token(store):
    from nbaimaas.backends.client import ServiceClient
    from nbaimaas.errors import RateLimited

    from .conftest import BASE

    client, app = make_client(store, rate_limit=2)          # 2 a second, bursts of 4
    with client:
        admin = {"Authorization": f"Bearer {(store / 'token').read_text().strip()}"}
        codes = [client.get("/v1/models", headers=admin).status_code for _ in range(10)]
        assert codes[:4] == [200] * 4 and 429 in codes[4:]
        limited = client.get("/v1/models", headers=admin)
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert limited.json()["code"] == "rate_limited"
        assert client.get("/v1/health").status_code == 200          # health is never limited
        predict = {"Authorization": f"Bearer {(store / 'token.predict').read_text().strip()}"}
        assert client.get("/v1/models", headers=predict).status_code == 200   # its own bucket
        with pytest.raises(RateLimited, match="requests a second"):
            ServiceClient(BASE, home=store, client=client).models()
    app.state.ctx.jobs.close()


def test_no_rate_limit_by_default(admin, app_client):
    client, _ = app_client
    assert all(client.get("/v1/models", headers=admin).status_code == 200 for _ in range(30))


def test_the_predict_fast_door_refuses_exactly_as_the_framework(store):
    """The same request through both doors: as the fast door takes it, and with a parameter
    given twice, which the door hands to FastAPI. Every refusal must read the same."""
    import torch

    from nbaimaas.engine.registry import Registry

    client, app = make_client(store, max_body=1024)
    # a registered name, so a request gets as far as reading its body
    Registry(store).register("m", weights={"w": torch.zeros(2)}, spec={"model": {"arch": "mlp"}},
                             info={"task": "classification", "classes": ["a", "b"]})
    admin = {"Authorization": f"Bearer {(store / 'token').read_text().strip()}"}
    small = encode_npy(np.zeros((1, 8, 8), np.float32))              # under 1 KB
    doors = {"fast": "/v1/models/nosuch/predict", "framework": "/v1/models/nosuch/predict?top_k=1&top_k=1"}
    scope = {"type": "http", "method": "POST", "path": "/v1/models/nosuch/predict",
             "headers": [(b"content-type", NPY_TYPE.encode())]}
    assert app.door.call({**scope, "query_string": b""}) is not None
    assert app.door.call({**scope, "query_string": b"top_k=1&top_k=1"}) is None

    def answer(door, headers, content=small, model="nosuch"):
        r = client.post(doors[door].replace("nosuch", model), content=content,
                        headers={"Content-Type": NPY_TYPE, **headers})
        return r.status_code, r.json()["code"], r.headers.get("www-authenticate")

    cases = {
        "no token": ({}, small),
        "wrong token": ({"Authorization": "Bearer wrong-token-000000"}, small),
        "foreign host": ({**admin, "Host": "evil.example"}, small),
        "declared too large": (admin, b"\0" * 2000),
        "chunked too large": (admin, iter([b"\0" * 800, b"\0" * 800])),
        "unknown model": (admin, small),
    }
    expected = {"no token": 401, "wrong token": 401, "foreign host": 400, "declared too large": 413,
                "chunked too large": 413, "unknown model": 404}
    with client:
        for what, (headers, content) in cases.items():
            model = "m" if what == "chunked too large" else "nosuch"
            if what == "chunked too large":
                fast = answer("fast", headers, iter([b"\0" * 800, b"\0" * 800]), model)
            else:
                fast = answer("fast", headers, content, model)
            framework = answer("framework", headers, content, model)
            assert fast == framework and fast[0] == expected[what], (what, fast, framework)
    app.state.ctx.jobs.close()

    client, app = make_client(store, rate_limit=2)                    # bursts of 4
    with client:
        assert [answer("fast", admin)[0] for _ in range(4)] == [404] * 4
        assert answer("fast", admin)[:2] == answer("framework", admin)[:2] == (429, "rate_limited")
    app.state.ctx.jobs.close()
