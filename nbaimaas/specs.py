"""Specs: the only currency that crosses a boundary.

The magic parser, the panel form, ``api.train(...)``, an HTTP body, a torchrun worker's argument
and the metadata stored with a trained model are all one of these frozen dataclasses. Each
validates itself on construction (one clear line per mistake) and round-trips exactly through
JSON: ``TrainSpec.from_json(spec.to_json()) == spec``.

Plain data only: no torch, no IPython.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from .errors import SpecError, unknown_name

__all__ = [
    "DataSpec", "ModelSpec", "InitSpec", "TrainSpec", "TuneSpec", "PredictRequest",
    "OPTIMIZERS", "SCHEDULES", "LOSSES", "INIT_SCHEMES", "SCALERS", "NAN_POLICIES",
]

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "step", "cosine", "onecycle")
LOSSES = ("cross_entropy", "mse", "mae", "huber")
INIT_SCHEMES = (
    "default", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal", "orthogonal",
)
SCALERS = ("standard", "minmax", "none")
NAN_POLICIES = ("drop", "mean", "zero", "interpolate", "error")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")

S = TypeVar("S", bound="_Spec")


def _choice(kind: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise unknown_name(kind, value, allowed)


def _positive(name: str, value: Any, *, integer: bool = False, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value) or value <= 0:
        what = "a positive integer" if integer else "a positive number"
        raise SpecError(f"{name} must be {what}, got {value!r}")


def _fraction(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise SpecError(f"{name} must be a fraction in [0, 1), got {value!r}")


class _Spec:
    """JSON round trip shared by every spec (nested specs are rebuilt by their field type)."""

    _nested: ClassVar[dict[str, type]] = {}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)  # type: ignore[arg-type]

    def to_json(self, **kw: Any) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, **kw)

    @classmethod
    def from_dict(cls: type[S], data: dict) -> S:
        if isinstance(data, cls):
            return data
        if not isinstance(data, dict):
            raise SpecError(f"{cls.__name__} needs a mapping, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        for key in data:
            if key not in names:
                raise unknown_name(f"{cls.__name__} field", key, names)
        kw = dict(data)
        for key, sub in cls._nested.items():
            if key in kw and kw[key] is not None:
                kw[key] = sub.from_dict(kw[key])
        return cls(**kw)

    @classmethod
    def from_json(cls: type[S], text: str) -> S:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise SpecError(f"{cls.__name__} JSON is not valid: {e}") from None
        return cls.from_dict(data)

    def replace(self: S, **changes: Any) -> S:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


@dataclass(frozen=True)
class DataSpec(_Spec):
    """Where the data comes from and how it is prepared.

    ``name`` is a built-in dataset (``ai.datasets()``), a CSV path, a folder of images with one
    subfolder per class, or ``"inline"`` for arrays/DataFrames passed in process.
    """

    name: str = "digits"
    target: str | None = None          # label column (tables) or the series to forecast
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    scale: str = "standard"            # statistics fitted on the training split only
    nan: str = "drop"                  # what to do with missing values (reported either way)
    image_size: int | None = None      # resize images to a square of this side
    window: int = 24                   # series: input window length
    horizon: int = 1                   # series: steps forecast at once
    max_vocab: int = 10000             # text: vocabulary size, fitted on the training split
    max_len: int = 48                  # text: tokens kept per document
    limit: int | None = None           # keep only the first N samples (quick experiments)
    seed: int = 0                      # the split's seed

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise SpecError(f"data name must be a non-empty string, got {self.name!r}")
        _fraction("val_fraction", self.val_fraction)
        _fraction("test_fraction", self.test_fraction)
        if self.val_fraction + self.test_fraction >= 0.9:
            raise SpecError("val_fraction + test_fraction must leave at least 10% for training")
        _choice("scaler", self.scale, SCALERS)
        _choice("NaN policy", self.nan, NAN_POLICIES)
        _positive("image_size", self.image_size, integer=True, allow_none=True)
        _positive("window", self.window, integer=True)
        _positive("horizon", self.horizon, integer=True)
        _positive("max_vocab", self.max_vocab, integer=True)
        _positive("max_len", self.max_len, integer=True)
        _positive("limit", self.limit, integer=True, allow_none=True)


@dataclass(frozen=True)
class ModelSpec(_Spec):
    """An architecture from the catalog and its options, or a declarative list of layers."""

    arch: str = "mlp"
    options: dict = field(default_factory=dict)
    layers: list | None = None         # for arch="layers": [{"type": "linear", "out": 64}, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.arch, str) or not self.arch:
            raise SpecError(f"model arch must be a non-empty string, got {self.arch!r}")
        if not isinstance(self.options, dict):
            raise SpecError(f"model options must be a mapping, got {type(self.options).__name__}")
        if self.arch == "layers" and not self.layers:
            raise SpecError("arch 'layers' needs a non-empty 'layers' list")
        if self.layers is not None and not isinstance(self.layers, list):
            raise SpecError("layers must be a list of {'type': ...} mappings")


@dataclass(frozen=True)
class InitSpec(_Spec):
    """How parameters start: a scheme applied by layer type, reproducible from the run's seed."""

    scheme: str = "default"            # for Linear and Conv weights
    recurrent: str = "orthogonal"      # for LSTM/GRU hidden-to-hidden weights ("default" keeps torch's)
    bias: str = "zero"                 # "zero" or "default"

    def __post_init__(self) -> None:
        _choice("init scheme", self.scheme, INIT_SCHEMES)
        _choice("recurrent init scheme", self.recurrent, INIT_SCHEMES)
        _choice("bias init", self.bias, ("zero", "default"))


@dataclass(frozen=True)
class TrainSpec(_Spec):
    """Everything a training run needs; ``ai.train(**fields)`` builds one of these."""

    _nested: ClassVar[dict[str, type]] = {"data": DataSpec, "model": ModelSpec, "init": InitSpec}

    data: DataSpec = field(default_factory=DataSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    init: InitSpec = field(default_factory=InitSpec)
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9              # SGD only
    weight_decay: float = 0.0
    epochs: int = 10
    batch_size: int = 64
    schedule: str = "constant"
    loss: str | None = None            # None: chosen from the task
    early_stop: int | None = None      # patience in epochs; None: never stop early
    monitor: str | None = None         # metric for best checkpoint and early stop; None: val_loss
    grad_clip: float | None = None     # max gradient norm
    seed: int = 0
    name: str | None = None            # register the best model under this name when done
    device: str = "auto"
    precision: str = "auto"

    def __post_init__(self) -> None:
        for key, sub in self._nested.items():
            if not isinstance(getattr(self, key), sub):
                raise SpecError(f"{key} must be a {sub.__name__}")
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _positive("lr", self.lr)
        _fraction("momentum", self.momentum)
        if not isinstance(self.weight_decay, (int, float)) or self.weight_decay < 0:
            raise SpecError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        _positive("epochs", self.epochs, integer=True)
        _positive("batch_size", self.batch_size, integer=True)
        _choice("schedule", self.schedule, SCHEDULES)
        if self.loss is not None:
            _choice("loss", self.loss, LOSSES)
        _positive("early_stop", self.early_stop, integer=True, allow_none=True)
        _positive("grad_clip", self.grad_clip, allow_none=True)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise SpecError(f"seed must be a non-negative integer, got {self.seed!r}")
        _choice("device", self.device, DEVICES)
        _choice("precision", self.precision, PRECISIONS)
        if self.name is not None:
            from .names import check_model_name

            check_model_name(self.name)


@dataclass(frozen=True)
class TuneSpec(_Spec):
    """A hyperparameter search: a base TrainSpec and the ranges to try (run by Optuna)."""

    _nested: ClassVar[dict[str, type]] = {"base": TrainSpec}

    base: TrainSpec = field(default_factory=TrainSpec)
    space: dict = field(default_factory=dict)   # {"lr": [1e-4, 1e-1, "log"], "optimizer": ["adam", "sgd"]}
    trials: int = 10
    metric: str = "val_loss"
    direction: str = "minimize"
    storage: str | None = None                  # Optuna storage URL, shared between workers
    study: str | None = None

    def __post_init__(self) -> None:
        _positive("trials", self.trials, integer=True)
        _choice("direction", self.direction, ("minimize", "maximize"))


@dataclass(frozen=True)
class PredictRequest(_Spec):
    """What to predict with; the raw inputs travel beside it (arrays are not spec fields)."""

    model: str = ""
    top_k: int = 1
    horizon: int | None = None         # forecasts: steps ahead (multiples of the model's horizon)

    def __post_init__(self) -> None:
        if not self.model:
            raise SpecError("predict needs a model reference such as 'digits-cnn' or 'digits-cnn:2'")
        _positive("top_k", self.top_k, integer=True)
        _positive("horizon", self.horizon, integer=True, allow_none=True)
