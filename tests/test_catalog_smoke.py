"""Every architecture in the catalog, end to end through the registry: a new entry is tested for free.

Build on a compatible built-in dataset, train a few steps, register (save), reload from disk into
a fresh process-level cache, and predict on raw inputs.
"""

from __future__ import annotations

import numpy as np
import pytest

import nbaimaas as ai
from nbaimaas.engine.models import ARCHITECTURES
from nbaimaas.errors import OutOfMemoryError

# One small built-in dataset per modality, and what a `layers` spec looks like for it.
DATA_FOR = {"image": "digits", "tabular": "iris", "series": "sunspots", "text": "topics"}
LAYERS_FOR = {
    "image": [{"type": "conv2d", "out": 4, "kernel": 3, "padding": 1}, {"type": "relu"},
              {"type": "flatten"}, {"type": "linear"}],
    "tabular": [{"type": "linear", "out": 16}, {"type": "relu"}, {"type": "linear"}],
    "series": [{"type": "flatten"}, {"type": "linear"}],
    "text": [{"type": "embedding", "out": 8}, {"type": "flatten"}, {"type": "linear"}],
}


def cases():
    for name in ARCHITECTURES.names():
        for modality in ARCHITECTURES.get(name).modalities:
            yield pytest.param(name, modality, id=f"{name}-{modality}")


@pytest.mark.parametrize("arch,modality", list(cases()))
def test_architecture_trains_saves_loads_and_predicts(arch, modality):
    data = DATA_FOR[modality]
    layers = LAYERS_FOR[modality] if arch == "layers" else None
    r = ai.train(data=data, model=arch, layers=layers, limit=200, epochs=1, batch_size=32, name="smoke")
    assert r.status == "completed" and r.model == "smoke:1"
    ai.connect("local")                          # a fresh backend: the model must come back from disk
    raw = ai.sample(data, n=3)["inputs"]
    pred = ai.predict("smoke", raw[-24:] if modality == "series" else raw)
    if modality == "series":
        assert pred.values.shape == (1, 1) and np.isfinite(pred.values).all()
    else:
        assert len(pred.labels) == 3
        np.testing.assert_allclose(pred.probabilities.sum(1), 1.0, rtol=1e-5)


def test_out_of_memory_becomes_a_clear_error():
    from nbaimaas.engine.runs import _as_training_error

    err = _as_training_error(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert isinstance(err, OutOfMemoryError) and "smaller batch_size" in str(err)
