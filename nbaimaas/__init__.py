"""nbaimaas: AI models as a service, in the notebook.

    import nbaimaas as ai
    ai.datasets()                                    # 1. data
    ai.architectures()                               # 2. models
    r = ai.train(data="digits", model="lenet", epochs=10, name="digits-cnn")   # 3-6
    ai.tune(data="digits", model="lenet", space={"lr": {"low": 1e-4, "high": 1e-1, "log": True}})  # 6
    ai.evaluate("digits-cnn")                        # 5. validate on the test split
    ai.predict("digits-cnn", images)                 # 7. apply to raw inputs

In a notebook, ``%load_ext nbaimaas`` adds the same steps as magics (``%aimaas_train`` ...).
Importing this package does not import torch; the engine loads on first use.
"""

from __future__ import annotations

from . import errors
from .api import (
    alias, architectures, backend, connect, datasets, delete, describe, evaluate, get_run, lr_find,
    model, models, predict, resume, runs, sample, serve, start_training, summary, train, train_spec,
    tune,
)
from .errors import NbaimaasError, UserError
from .results import EvalResult, ModelVersion, Prediction, TrainResult, TuneResult
from .specs import DataSpec, InitSpec, ModelSpec, PredictRequest, TrainSpec, TuneSpec

__version__ = "0.1.0"

__all__ = [
    "alias", "architectures", "backend", "connect", "datasets", "delete", "describe", "evaluate",
    "get_run", "lr_find", "model", "models", "predict", "resume", "runs", "sample", "start_training",
    "summary", "train", "train_spec", "serve", "tune",
    "DataSpec", "InitSpec", "ModelSpec", "PredictRequest", "TrainSpec", "TuneSpec",
    "EvalResult", "ModelVersion", "Prediction", "TrainResult", "TuneResult", "NbaimaasError", "UserError", "errors",
    "load_ipython_extension", "unload_ipython_extension",
    "TrainPanel", "PredictPanel", "ModelsPanel",
]

_PANELS = ("TrainPanel", "PredictPanel", "ModelsPanel")


def __getattr__(name: str):
    # Panels need ipywidgets and matplotlib; import them only when someone asks for a panel.
    if name in _PANELS:
        from .notebook import panels

        return getattr(panels, name)
    raise AttributeError(f"module 'nbaimaas' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PANELS))


def load_ipython_extension(ipython) -> None:
    """``%load_ext nbaimaas``: register the magics (imports no torch)."""
    from .notebook.magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython) -> None:
    from .notebook.magics import unload_ipython_extension as unload

    unload(ipython)
