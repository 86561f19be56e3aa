"""The Python twin of every magic: the seven steps as plain function calls.

Each function builds a spec, asks the current Backend (``ai.connect``) and returns a result value.
Keywords are the spec's fields; ``ai.train(data="digits", model="lenet", epochs=10)`` is the same as
``ai.train(ai.TrainSpec(data=ai.DataSpec("digits"), model=ai.ModelSpec("lenet"), epochs=10))``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Callable
from typing import Any

from .errors import SpecError, UserError, unknown_name
from .results import Listing
from .session import current
from .specs import DataSpec, InitSpec, ModelSpec, PredictRequest, TrainSpec, TuneSpec

__all__ = [
    "datasets", "architectures", "describe", "sample", "summary", "train", "start_training",
    "resume", "get_run", "runs", "lr_find", "tune", "evaluate", "predict", "models", "model", "alias",
    "delete", "connect", "backend", "train_spec", "serve", "Served",
]

_DATA_FIELDS = {f.name for f in dataclasses.fields(DataSpec)} - {"name", "seed"}
_TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainSpec)} - {"data", "model", "init"}


def backend():
    """The Backend every call below goes to (in-process engine unless ``connect``-ed)."""
    return current().backend


def connect(target: str = "local", *, token: str | None = None, home: str | None = None, transport=None):
    """Use the in-process engine (``"local"``) or a model service at a URL."""
    return current().connect(target, token=token, home=home, transport=transport)


class Served:
    """A model service this kernel started (``ai.serve()``): its URL, process and client."""

    def __init__(self, url: str, process, backend):
        self.url, self.process, self.backend = url, process, backend

    def __repr__(self) -> str:
        state = "running" if self.process.poll() is None else "stopped"
        return f"<nbaimaas service at {self.url} ({state})>"

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the service and switch this session back to the in-process engine."""
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except Exception:  # noqa: BLE001 - it would not stop politely
            self.process.kill()
        current().connect("local")


def serve(home: str | None = None, port: int = 0) -> Served:
    """Start a model service on 127.0.0.1 as a child process and connect this session to it.

    The service shares the store (``home``), so it reads the admin token from there.
    """
    try:
        from .service.launch import serve_in_background
    except ImportError as e:
        raise UserError(f"the model service needs {e.name}", "pip install nbaimaas[service]") from None
    url, process = serve_in_background(home, port=port)
    return Served(url, process, current().connect(url, home=home))


# -- building specs from keywords ------------------------------------------------------------

def _is_module(obj: Any) -> bool:
    # Duck-typed so this layer never imports torch: an nn.Module has these three.
    return all(hasattr(obj, a) for a in ("state_dict", "parameters", "forward"))


def _split_data(data: Any) -> tuple[str | DataSpec, Any]:
    """A built-in name, path or DataSpec stays a spec; anything else is inline user data."""
    if isinstance(data, (str, DataSpec)):
        return data, None
    if data is None:
        raise UserError("no data given", "pass data='digits' (see ai.datasets()) or your arrays")
    return "inline", data


def data_spec(data: Any = "digits", seed: int = 0, **fields) -> tuple[DataSpec, Any]:
    name, inline = _split_data(data)
    for key in fields:
        if key not in _DATA_FIELDS:
            raise unknown_name("data option", key, _DATA_FIELDS)
    if isinstance(name, DataSpec):
        return (name.replace(**fields) if fields else name), inline
    return DataSpec(name=name, seed=seed, **fields), inline


def _model_spec(model: Any, options: dict | None, layers: list | None) -> tuple[ModelSpec, Any]:
    if _is_module(model):
        return ModelSpec(arch="module"), model
    if isinstance(model, ModelSpec):
        return model, None
    if isinstance(model, dict):
        return ModelSpec.from_dict(model), None
    if layers is not None:
        return ModelSpec(arch="layers", options=options or {}, layers=list(layers)), None
    if not isinstance(model, str):
        raise SpecError(f"model must be an architecture name, a ModelSpec or an nn.Module, got {type(model).__name__}")
    return ModelSpec(arch=model, options=options or {}), None


def _init_spec(init: Any) -> InitSpec:
    if isinstance(init, InitSpec):
        return init
    if isinstance(init, dict):
        return InitSpec.from_dict(init)
    return InitSpec(scheme=init)


def train_spec(spec: TrainSpec | None = None, *, data: Any = "digits", model: Any = "mlp",
               init: Any = "default", options: dict | None = None, layers: list | None = None,
               **fields) -> tuple[TrainSpec, Any, Any]:
    """(TrainSpec, inline data or None, user nn.Module or None) from keywords."""
    if spec is not None:
        if not isinstance(spec, TrainSpec):
            spec = TrainSpec.from_dict(spec)
        return spec, None, None
    data_fields = {k: fields.pop(k) for k in list(fields) if k in _DATA_FIELDS}
    for key in fields:
        if key not in _TRAIN_FIELDS:
            raise unknown_name("train option", key, _TRAIN_FIELDS | _DATA_FIELDS | {"data", "model", "init"})
    dspec, inline = data_spec(data, seed=fields.get("seed", 0), **data_fields)
    mspec, module = _model_spec(model, options, layers)
    return TrainSpec(data=dspec, model=mspec, init=_init_spec(init), **fields), inline, module


# -- the seven steps -------------------------------------------------------------------------

def datasets() -> Listing:
    """Step 1, what data there is: the built-in datasets, with task, shapes and classes."""
    return Listing(backend().datasets(), caption="built-in datasets")


def describe(data: Any = "digits", **fields) -> dict:
    """Step 1, look at the data: task, shapes, classes and counts, NaN report, a few samples."""
    spec, inline = data_spec(data, **fields)
    return backend().describe_data(spec, inline)


def sample(data: Any = "digits", n: int = 16, **fields) -> dict:
    """Raw test inputs and their labels, e.g. images to try ``predict`` on."""
    spec, inline = data_spec(data, **fields)
    return backend().sample(spec, "test", n, inline)


def architectures(task: str | None = None, modality: str | None = None) -> Listing:
    """Step 2, what models there are: the architecture catalog and the tasks each fits."""
    return Listing(backend().architectures(task, modality), caption="architectures")


def summary(model: Any = "mlp", data: Any = "digits", *, options: dict | None = None,
            layers: list | None = None, **data_fields):
    """Step 2, look at a model: layers, output shapes and parameter counts, sized to the data."""
    dspec, inline = data_spec(data, **data_fields)
    mspec, module = _model_spec(model, options, layers)
    return backend().summary(mspec, dspec, inline, module)


def start_training(spec: TrainSpec | None = None, **fields):
    """Steps 3-4 without waiting: returns a Run (``events()``, ``wait()``, ``stop()``, ``result()``)."""
    spec, inline, module = train_spec(spec, **fields)
    return backend().start_training(spec, inline, module)


def train(spec: TrainSpec | None = None, *, progress: Callable | None = None, **fields):
    """Steps 3-6: initialise, train, validate every epoch, keep the best; returns a TrainResult.

    ``progress`` is called with every event (the notebook passes its live view). Ctrl-C stops
    the run at a batch boundary and returns what was kept instead of losing it.
    """
    run = start_training(spec, **fields)
    return watch(run, progress)


def watch(run, progress: Callable | None = None, poll: float = 0.1):
    """Follow a run until it ends, feeding ``progress``; Ctrl-C asks it to stop and waits."""
    cursor = _Cursor(run, progress)
    try:
        while not run.done:
            cursor.pull(poll)
    except KeyboardInterrupt:
        run.stop()
    while not run.done:          # after Ctrl-C: the run finishes its batch and saves
        cursor.pull(poll)
    cursor.pull(0)
    return run.result()


class _Cursor:
    """Reads a run's events in order, each handed to ``progress`` exactly once."""

    def __init__(self, run, progress: Callable | None):
        self.run, self.progress, self.seen = run, progress, -1

    def pull(self, timeout: float) -> None:
        for event in self.run.events(self.seen, timeout=timeout):
            self.seen = event.seq    # first, so an interrupt inside progress never replays it
            if self.progress is not None:
                self.progress(event)


def resume(run_id: str, data: Any = None, *, progress: Callable | None = None):
    """Continue a stopped or interrupted run from its last checkpoint, to the same end."""
    inline = None if data is None or isinstance(data, str) else data
    return watch(backend().resume(run_id, inline), progress)


def get_run(run_id: str):
    return backend().get_run(run_id)


def runs() -> list:
    return backend().runs()


def lr_find(spec: TrainSpec | None = None, **fields) -> dict:
    """Step 6, pick a learning rate: the LR range test's curve and its suggestion."""
    spec, inline, module = train_spec(spec, **fields)
    return backend().lr_find(spec, inline, module)


def tune(spec: TuneSpec | None = None, *, space: dict | None = None, trials: int = 10,
         metric: str = "val_loss", direction: str | None = None, storage: str | None = None,
         study: str | None = None, progress: Callable | None = None, **train_fields):
    """Step 6, optimise: search hyperparameters with Optuna; returns a TuneResult.

    ``space`` maps TrainSpec field paths to choices (a list) or ranges (``{"low", "high", "log"}``,
    ``{"low", "high", "int": True}``); the other keywords build the base spec as for ``ai.train``::

        ai.tune(data="digits", model="mlp", epochs=5, space={"lr": {"low": 1e-4, "high": 1e-1, "log": True}},
                metric="val_accuracy", trials=20, name="digits-mlp")

    ``direction`` defaults to minimize for losses, mae and rmse. With ``name``, each trial that
    beats the best so far is registered, so ``NAME@best`` ends on the winner. ``storage``
    (``"sqlite:///study.db"``) and ``study`` let several processes share one study. ``progress``
    gets a dict per finished trial.
    """
    if importlib.util.find_spec("optuna") is None:     # say what is missing, in one line
        raise UserError("tuning needs optuna", "pip install nbaimaas[tune]")
    inline = module = None
    if spec is None:
        base, inline, module = train_spec(**train_fields)
        spec = TuneSpec(base=base, space=space or {}, trials=trials, metric=metric, direction=direction,
                        storage=storage, study=study)
    elif not isinstance(spec, TuneSpec):
        spec = TuneSpec.from_dict(spec)
    return backend().tune(spec, inline, module, progress)


def evaluate(model: str, data: Any = None, split: str = "test", **fields):
    """Step 5, validate: metrics (and a confusion matrix) of a registered model on a split."""
    if data is None and not fields:
        return backend().evaluate(str(model), None, split)
    spec, inline = data_spec(data if data is not None else "inline", **fields)
    return backend().evaluate(str(model), spec if inline is None else None, split, inline)


def predict(model: str, inputs: Any, top_k: int = 1, horizon: int | None = None):
    """Step 7, apply: raw inputs in (images, rows, strings, a recent window), predictions out."""
    return backend().predict(PredictRequest(model=str(model), top_k=top_k, horizon=horizon), inputs)


def models(name: str | None = None) -> Listing:
    """The registry: every registered model version with its aliases and metrics."""
    return Listing(backend().models(name), caption="registered models")


def model(ref: str):
    return backend().model(str(ref))


def alias(ref: str, alias: str):
    """Point ``NAME@ALIAS`` at a version, e.g. ``ai.alias("digits-cnn:2", "prod")``."""
    return backend().set_alias(str(ref), alias)


def delete(ref: str, all_versions: bool = False) -> None:
    backend().delete(str(ref), all_versions)
