"""One contract, two backends: LocalBackend (in process) and ServiceClient (over HTTP).

Each check runs against both; a model "tiny" is trained once per backend for the module.
"""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from nbaimaas.backends.base import Backend, Run
from nbaimaas.backends.client import ServiceClient
from nbaimaas.backends.local import LocalBackend
from nbaimaas.errors import NotFoundError, UnknownNameError, UserError
from nbaimaas.events import RunEnded, RunStarted
from nbaimaas.specs import DataSpec, PredictRequest, TrainSpec
from nbaimaas.service.app import create_app

from .conftest import BASE, TINY


@pytest.fixture(scope="module", params=["local", "service"])
def backend(request, tmp_path_factory):
    store = tmp_path_factory.mktemp(f"contract-{request.param}")
    if request.param == "local":
        yield LocalBackend(store)
        return
    app = create_app(store)
    with TestClient(app, base_url=BASE, raise_server_exceptions=False) as client:
        yield ServiceClient(BASE, home=store, client=client)
    app.state.ctx.jobs.close()


@pytest.fixture(scope="module")
def tiny(backend):
    """The run that trained and registered "tiny" (finished)."""
    run = backend.start_training(TrainSpec.from_dict({**TINY, "name": "tiny"}))
    run.wait(120)
    return run


def test_is_a_backend(backend):
    assert isinstance(backend, Backend)


def test_catalogs(backend):
    assert "digits" in [d.name for d in backend.datasets()]
    assert "mlp" in [a.name for a in backend.architectures()]
    assert all("classification" in a.tasks for a in backend.architectures(task="classification"))


def test_training_registers_the_model(backend, tiny):
    assert isinstance(tiny, Run) and tiny.done and tiny.status == "completed"
    result = tiny.result()
    assert result.model == "tiny:1" and result.epochs_run == 2
    assert [m.ref for m in backend.models()] == ["tiny:1"]
    assert backend.model("tiny").version == 1
    assert backend.get_run(tiny.id).id == tiny.id


def test_events_are_numbered_from_start_to_end(tiny):
    events = tiny.events()
    assert isinstance(events[0], RunStarted) and isinstance(events[-1], RunEnded)
    assert [e.seq for e in events] == list(range(len(events)))
    assert events[-1].status == "completed" and events[-1].model == "tiny:1"
    assert tiny.events(after=events[-2].seq) == [events[-1]]


def test_alias(backend, tiny):
    mv = backend.set_alias("tiny:1", "prod")
    assert "prod" in mv.aliases
    assert backend.model("tiny@prod").ref == "tiny:1"
    with pytest.raises(NotFoundError, match="no alias"):
        backend.model("tiny@nope")


def test_evaluate(backend, tiny):
    result = backend.evaluate("tiny")
    assert result.split == "test" and 0 <= result.metrics["test_accuracy"] <= 1
    assert len(result.confusion) == 10


def test_predict(backend, tiny):
    images = LocalBackend(backend.home if hasattr(backend, "home") else None).sample(
        DataSpec("digits", limit=300), n=5)["inputs"]
    pred = backend.predict(PredictRequest(model="tiny", top_k=2), images)
    assert len(pred.labels) == 5 and pred.probabilities.shape == (5, 10)
    np.testing.assert_allclose(pred.probabilities.sum(1), 1, atol=1e-5)


def test_inline_arrays(backend):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    run = backend.start_training(TrainSpec.from_dict({"data": {"name": "inline"}, "epochs": 1}), (x, y))
    assert run.wait(120).status == "completed"


def test_stop(backend):
    spec = TrainSpec.from_dict({"data": {"name": "digits"}, "epochs": 500, "batch_size": 8})
    run = backend.start_training(spec)
    run.stop()
    result = run.wait(120)
    assert run.status == "stopped" and result.status == "stopped"


def test_user_errors_read_the_same(backend):
    with pytest.raises(UnknownNameError, match="did you mean 'digits'"):
        backend.start_training(TrainSpec(data=DataSpec("digitz")))
    with pytest.raises(NotFoundError, match="no model named 'nope'"):
        backend.model("nope")
    with pytest.raises(UserError, match="invalid model reference"):
        backend.model("../etc")


def test_delete(backend, tiny):
    backend.delete("tiny", all_versions=True)
    with pytest.raises(NotFoundError):
        backend.model("tiny")
