"""Apply a registered model: raw inputs in, labels with probabilities (or values) out.

A trained model carries its preprocessing, so ``predict`` rebuilds the fitted preprocessor from
the registry and applies it; nothing about the training data has to be known by the caller.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..errors import DataError, IncompatibleError
from ..results import EvalResult, ModelVersion, Prediction
from ..specs import DataSpec, ModelSpec
from .data import load_preprocessor, prepare
from .loop import evaluate_split
from .metrics import make_loss
from .models import create_model
from .registry import Registry
from .types import DataInfo, Prepared, Split


@dataclass
class Servable:
    """A registered model ready to run: network, fitted preprocessor and what it was trained on."""

    version: ModelVersion
    model: nn.Module
    preprocessor: object
    info: DataInfo
    data_spec: DataSpec

    @property
    def ref(self) -> str:
        return self.version.ref


class ModelCache:
    """Loaded models by exact version, least recently used dropped first; references resolved
    once per registry change.

    Resolving ``name``, ``name@alias`` or ``name:3`` costs a few SQLite queries (about half a
    millisecond), too much per prediction. Resolutions are kept while the registry is unchanged:
    SQLite's ``PRAGMA data_version`` on a kept connection changes whenever any other connection,
    in this process or another (a training worker registering a version, a client deleting
    one), commits to the database, and costs a few microseconds to read. Any change drops every
    kept resolution. Loaded models are keyed by exact version, which is immutable (version
    numbers are never reused), so only their resolution has to be fresh.
    """

    def __init__(self, registry: Registry, size: int = 8):
        self.registry = registry
        self.size = size
        self._items: OrderedDict[str, Servable] = OrderedDict()
        self._modules: dict[str, nn.Module] = {}     # in-process user modules by ref
        self._lock = threading.Lock()
        self._resolved: dict[str, ModelVersion] = {}
        self._generation: int | None = None          # data_version the resolutions belong to
        self._watch: sqlite3.Connection | None = None
        self._watch_lock = threading.Lock()
        self.resolutions = 0                         # SQLite resolutions done (for tests)

    def remember_module(self, ref: str, module: nn.Module) -> None:
        """A user's own nn.Module cannot be rebuilt from a spec; keep it for this process."""
        self._modules[ref] = module

    def resolved(self, ref: str) -> ModelVersion | None:
        """The kept resolution of ``ref`` if the registry has not changed since; no queries."""
        if not self._fresh():
            return None
        return self._resolved.get(ref)

    def resolve(self, ref: str) -> ModelVersion:
        """``ref`` -> its exact version, from the kept resolutions while the registry is unchanged."""
        fresh = self._fresh()        # read before resolving: a change meanwhile is seen next time
        if fresh:
            version = self._resolved.get(ref)
            if version is not None:
                return version
        generation = self._generation
        version = self.registry.resolve(ref)
        self.resolutions += 1
        if fresh:
            with self._watch_lock:
                if self._generation == generation:
                    if len(self._resolved) >= 1024:
                        self._resolved.clear()
                    self._resolved[ref] = version
        return version

    def _fresh(self) -> bool:
        """Whether the kept resolutions still hold; drops them when the registry changed."""
        with self._watch_lock:
            try:
                if self._watch is None:
                    self._watch = sqlite3.connect(self.registry.db_path, timeout=1.0,
                                                  isolation_level=None, check_same_thread=False)
                generation = self._watch.execute("PRAGMA data_version").fetchone()[0]
            except sqlite3.Error:
                self._close_watch()
                return False         # cannot tell: resolve every time (correct, only slower)
            if generation != self._generation:
                self._resolved.clear()
                self._generation = generation
            return True

    def _close_watch(self) -> None:
        if self._watch is not None:
            try:
                self._watch.close()
            except sqlite3.Error:
                pass
        self._watch, self._generation = None, None
        self._resolved.clear()

    def loaded(self, exact_ref: str) -> Servable | None:
        """The loaded model of an exact version just resolved (``resolve(ref).ref``), or None;
        no registry check, so only for a version the caller has resolved itself."""
        with self._lock:
            return self._items.get(exact_ref)

    def get(self, ref: str) -> Servable:
        version = self.resolve(ref)
        with self._lock:
            if version.ref in self._items:
                self._items.move_to_end(version.ref)
                return self._items[version.ref]
        servable = self._load(version)
        with self._lock:
            self._items[version.ref] = servable
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return servable

    def _load(self, version: ModelVersion) -> Servable:
        loaded = self.registry.load(version.ref)
        info = DataInfo.from_dict(loaded.info)
        spec = loaded.spec
        model_spec = ModelSpec.from_dict(spec["model"])
        if model_spec.arch == "module":
            model = self._modules.get(version.ref)
            if model is None:
                raise IncompatibleError(
                    f"{version.ref} was trained from your own nn.Module, which only this kernel can rebuild",
                    "train it again in this session, or register a catalog architecture")
        else:
            model = create_model(model_spec, info)
        model.load_state_dict(loaded.weights)
        model.eval()
        pre = load_preprocessor(loaded.preprocess_meta, loaded.preprocess_tensors)
        return Servable(version, model, pre, info, DataSpec.from_dict(spec["data"]))


@torch.inference_mode()   # not only no_grad: no version counters either (~5% of a small pass)
def run_model(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """The model's outputs on ``x``, for reading only (they never enter autograd)."""
    if model.training:      # eval() walks every submodule: ~0.2 ms a call on LeNet
        model.eval()
    if len(x) <= batch_size:
        return model(x)
    return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def predict(s: Servable, inputs, top_k: int = 1, horizon: int | None = None) -> Prediction:
    x = s.preprocessor.transform(inputs)
    if len(x) == 0:
        raise DataError("nothing to predict: the input is empty")
    info = s.info
    if info.task == "classification":
        probs = torch.softmax(run_model(s.model, x).float(), dim=1).numpy()
        labels = [info.classes[i] for i in probs.argmax(axis=1)]
        return Prediction(s.ref, info.task, labels=labels, probabilities=probs, classes=list(info.classes))
    if info.task == "forecast":
        values = _forecast(s, x, horizon or info.n_outputs)
    else:
        values = s.preprocessor.inverse_targets(run_model(s.model, x).float())
    return Prediction(s.ref, info.task, values=np.asarray(values, dtype=np.float32))


def _forecast(s: Servable, x: torch.Tensor, horizon: int) -> torch.Tensor:
    """Multi-step forecasts: feed each prediction back as the newest input (recursive strategy)."""
    steps, window = [], x                                # window: [N, W, 1] scaled
    while sum(p.shape[1] for p in steps) < horizon:
        out = run_model(s.model, window).float()          # [N, h] scaled
        steps.append(out)
        window = torch.cat([window[:, out.shape[1]:], out.unsqueeze(-1)], dim=1)[:, -x.shape[1]:]
    scaled = torch.cat(steps, dim=1)[:, :horizon]        # [N, horizon]
    return s.preprocessor.inverse_targets(scaled)


def evaluate(s: Servable, data: Prepared | None, split: str) -> EvalResult:
    """Metrics of a registered model on a split; the model's own fitted preprocessing is applied."""
    if split not in ("train", "val", "test"):
        raise DataError(f"unknown split '{split}'; choose train, val or test")
    data = data if data is not None else prepare(s.data_spec)
    if data.info.task != s.info.task or data.info.n_outputs != s.info.n_outputs:
        raise IncompatibleError(
            f"{s.ref} was trained for {s.info.task} with {s.info.n_outputs} outputs; "
            f"this data is {data.info.task} with {data.info.n_outputs}")
    part: Split = getattr(data, split)
    metrics = evaluate_split(s.model, part, make_loss(s.info.task, None), _with_model_pre(data, s), f"{split}_")
    confusion = None
    if s.info.task == "classification" and len(part):
        pred = run_model(s.model, part.x).argmax(1)
        k = len(s.info.classes)
        confusion = torch.bincount(part.y * k + pred, minlength=k * k).view(k, k).tolist()
    return EvalResult(s.ref, split, metrics, confusion, list(s.info.classes), len(part), s.info.task)


def _with_model_pre(data: Prepared, s: Servable) -> Prepared:
    # Regression metrics are reported in data units through the model's own fitted scaler.
    return Prepared(data.info, data.train, data.val, data.test, s.preprocessor, data.raw_test)
