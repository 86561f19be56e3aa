"""Prediction: JSON and .npy bodies, micro-batching, overload (503), upload/download round trip."""

from __future__ import annotations

import asyncio
import time

import httpx
import numpy as np
import pytest

from nbaimaas.backends.local import LocalBackend
from nbaimaas.service.app import create_app
from nbaimaas.service.wire import NPY_TYPE, encode_npy
from nbaimaas.specs import DataSpec, PredictRequest, TrainSpec

from .conftest import BASE, TINY


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A store holding 'tiny:1', trained in process (fast), and 16 raw test images."""
    store = tmp_path_factory.mktemp("predict-store")
    local = LocalBackend(store)
    local.start_training(TrainSpec.from_dict({**TINY, "name": "tiny"})).wait(120)
    images = local.sample(DataSpec("digits", limit=300), n=16)["inputs"]
    return store, local, np.asarray(images)


def _auth(store):
    return {"Authorization": "Bearer " + (store / "token").read_text().strip()}


async def _gather(app, store, images, n):
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE, headers=_auth(store)) as client:
        async def one(i):
            return await client.post("/v1/models/tiny/predict", content=encode_npy(images[i:i + 1]),
                                     headers={"Content-Type": NPY_TYPE})
        return await asyncio.gather(*(one(i % len(images)) for i in range(n)))


def test_concurrent_requests_share_forward_passes(trained):
    store, local, images = trained
    app = create_app(store, max_wait=0.01)
    replies = asyncio.run(_gather(app, store, images, 16))
    assert all(r.status_code == 200 for r in replies)
    batcher = app.state.ctx.batchers["tiny:1"]
    assert batcher.served == 16 and batcher.batches < 16
    for i, r in enumerate(replies):
        alone = local.predict(PredictRequest(model="tiny"), images[i:i + 1])
        assert r.json()["labels"] == alone.labels
        np.testing.assert_allclose(r.json()["probabilities"], alone.probabilities, atol=1e-5)


def test_stats_show_what_the_batcher_did(trained):
    store, _, images = trained
    app = create_app(store, max_wait=0.01)
    asyncio.run(_gather(app, store, images, 16))

    async def stats():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            token = (store / "token.predict").read_text().strip()      # the read-only token will do
            return (await client.get("/v1/stats", headers={"Authorization": f"Bearer {token}"})).json()

    got = asyncio.run(stats())["predict"]["tiny:1"]
    batcher = app.state.ctx.batchers["tiny:1"]
    assert got["served"] == 16 and got["batches"] == batcher.batches < 16
    assert got["largest"] == batcher.largest > 1 and got["queued"] == 0
    # passes are timed per bucket of rows: "1", "2-3", "4-7", ...
    assert set(got["ms_per_pass"]) <= {"1", "2-3", "4-7", "8-15", "16-31"} and got["ms_per_pass"]
    assert all(ms > 0 for ms in got["ms_per_pass"].values()) and got["on_thread_for_good"] == []


def test_full_queue_answers_503_with_retry_after(trained):
    store, _, images = trained
    app = create_app(store, max_batch=1, max_queue=1)
    batchers = app.state.ctx.batchers
    fast = batchers.run_batch

    def slow(ref, items):
        time.sleep(0.2)
        return fast(ref, items)

    batchers.run_batch = slow
    replies = asyncio.run(_gather(app, store, images, 6))
    codes = sorted(r.status_code for r in replies)
    assert codes.count(200) >= 1 and 503 in codes
    refused = next(r for r in replies if r.status_code == 503)
    assert refused.headers["Retry-After"] == "1" and refused.json()["code"] == "unavailable"


def test_json_inputs_and_predict_token(trained):
    from fastapi.testclient import TestClient

    store, local, images = trained
    app = create_app(store)
    predict_token = (store / "token.predict").read_text().strip()
    with TestClient(app, base_url=BASE) as client:
        r = client.post("/v1/models/tiny:1/predict", json={"inputs": images[:3].tolist()},
                        headers={"Authorization": f"Bearer {predict_token}"})
        assert r.status_code == 200 and len(r.json()["labels"]) == 3
        assert r.json()["labels"] == local.predict(PredictRequest(model="tiny"), images[:3]).labels
        bad = client.post("/v1/models/tiny/predict", json={"inputs": [[1, 2], [3]]},
                          headers={"Authorization": f"Bearer {predict_token}"})
        assert bad.status_code in (400, 422) and "Traceback" not in bad.text


def test_download_upload_round_trip(trained):
    from fastapi.testclient import TestClient
    from nbaimaas.backends.client import ServiceClient

    store, local, images = trained
    app = create_app(store)
    with TestClient(app, base_url=BASE) as client:
        sc = ServiceClient(BASE, home=store, client=client)
        blob = sc.download("tiny:1")
        mv = sc.upload("copy", blob)
        assert mv.ref == "copy:1" and mv.arch == "mlp"
        a = sc.predict(PredictRequest(model="copy"), images)
        b = local.predict(PredictRequest(model="tiny:1"), images)
        assert a.labels == b.labels
        # weights of the wrong shape for the architecture are refused, nothing registered
        from safetensors.torch import load, save
        import json
        from safetensors import safe_open
        tensors = load(blob)
        key = next(k for k in tensors if k.startswith("weights/"))
        tensors[key] = tensors[key][..., :1].contiguous()
        header_meta = json.loads(blob[8:8 + int.from_bytes(blob[:8], "little")])["__metadata__"]
        r = client.post("/v1/models/broken", content=save(tensors, metadata=header_meta),
                        headers={"Authorization": "Bearer " + (store / "token").read_text().strip()})
        assert r.status_code == 422 and r.json()["code"] == "incompatible"
        assert [m.name for m in sc.models()] == ["copy", "tiny"]
