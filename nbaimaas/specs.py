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

from .errors import SpecError, UserError, unknown_name

__all__ = [
    "DataSpec", "ModelSpec", "InitSpec", "TrainSpec", "TuneSpec", "PredictRequest", "apply_params",
    "TUNE_METRICS", "LOWER_IS_BETTER", "lower_is_better",
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
    nproc: int = 1                     # processes on this machine; > 1: torchrun + DDP, batch_size global

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
        _positive("nproc", self.nproc, integer=True)
        if self.batch_size < self.nproc:
            raise SpecError(f"batch_size is the global batch, split over {self.nproc} processes: "
                            f"it must be at least nproc, got {self.batch_size}")
        if self.name is not None:
            from .names import check_model_name

            check_model_name(self.name)


#: Metrics a run reports each epoch (``val_*`` ones need a validation split).
#: Metric name endings that are minimised (``val_loss``, ``test_rmse`` ...); every other metric
#: is maximised. One rule for best checkpoints, the registry's @best and tuning directions.
LOWER_IS_BETTER = ("loss", "mae", "mse", "rmse", "mape", "error")


def lower_is_better(metric: str) -> bool:
    return metric.lower().endswith(LOWER_IS_BETTER)


TUNE_METRICS = ("train_loss", "val_loss", "val_accuracy", "val_f1", "val_mae", "val_rmse", "val_r2")
_RANGE_KEYS = ("low", "high", "log", "int", "step")
# Roots of nested paths, the registry name, the monitor (a trial monitors the tuned metric), and
# nproc (trials train in the tuning process; several workers share a study through its storage).
_NOT_TUNABLE = {"data", "model", "init", "name", "monitor", "nproc"}


def _space_paths() -> set[str]:
    """Every TrainSpec field path a search space may name (``model.options.*`` is open-ended)."""
    top = {f.name for f in dataclasses.fields(TrainSpec)} - _NOT_TUNABLE
    data = {f"data.{f.name}" for f in dataclasses.fields(DataSpec)} - {"data.name"}
    init = {f"init.{f.name}" for f in dataclasses.fields(InitSpec)}
    return top | data | init | {"model.arch"}


def _check_path(key: Any) -> None:
    if not isinstance(key, str) or not key:
        raise SpecError(f"search space keys must be field paths such as 'lr', got {key!r}")
    if key.startswith("model.options.") and len(key) > len("model.options."):
        return
    known = _space_paths()
    if key not in known:
        raise unknown_name("search space field", key, known | {"model.options.<option>"})


def _integer_field(key: str) -> bool:
    """Whether the field a path names holds an integer (so a range over it must be an int range)."""
    root, _, rest = key.partition(".")
    cls = {"data": DataSpec, "init": InitSpec}.get(root, TrainSpec) if rest else TrainSpec
    name = rest if rest else key
    types = {f.name: str(f.type) for f in dataclasses.fields(cls)}
    return types.get(name, "").startswith("int")


def _number(key: str, what: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SpecError(f"space '{key}': {what} must be a number, got {value!r}")


def _check_range(key: str, rng: dict) -> list:
    """A ``{"low", "high", "log"?, "int"?, "step"?}`` range; returns its two ends."""
    for k in rng:
        if k not in _RANGE_KEYS:
            raise SpecError(f"space '{key}': {unknown_name('range key', k, _RANGE_KEYS).message}")
    if "low" not in rng or "high" not in rng:
        raise SpecError(f"space '{key}': a range needs both 'low' and 'high'")
    low, high = rng["low"], rng["high"]
    _number(key, "low", low)
    _number(key, "high", high)
    if not low < high:
        raise SpecError(f"space '{key}': low must be below high, got {low!r} >= {high!r}")
    if rng.get("int") and not (isinstance(low, int) and isinstance(high, int)):
        raise SpecError(f"space '{key}': an int range needs integer low and high, got {low!r}, {high!r}")
    if rng.get("log") and low <= 0:
        raise SpecError(f"space '{key}': a log range needs low > 0, got {low!r}")
    if "step" in rng:
        _number(key, "step", rng["step"])
        if rng["step"] <= 0 or rng.get("log"):
            raise SpecError(f"space '{key}': step must be > 0 and cannot be combined with log")
    return [low, high]


def _candidates(key: str, value: Any) -> list:
    """The values a space entry can take at its extremes (every choice, or both ends)."""
    if isinstance(value, list):
        if not value:
            raise SpecError(f"space '{key}': a list of choices needs at least one choice")
        return value
    if isinstance(value, dict):
        if _integer_field(key) and not value.get("int"):
            raise SpecError(f"space '{key}': {key} is a whole number; add \"int\": true to its range")
        return _check_range(key, value)
    raise SpecError(f"space '{key}': use a list of choices or a range "
                    f"{{\"low\": a, \"high\": b, \"log\": true}}, got {value!r}")


def apply_params(base: TrainSpec, params: dict) -> TrainSpec:
    """``base`` with ``params`` (field path -> value) applied; ``model.options.*`` merge into options."""
    top, nested = {}, {"data": {}, "init": {}, "model": {}}
    options = dict(base.model.options)
    for key, value in params.items():
        root, _, rest = key.partition(".")
        if root == "model" and rest.startswith("options."):
            options[rest[len("options."):]] = value
        elif rest:
            nested[root][rest] = value
        else:
            top[key] = value
    if options != base.model.options:
        nested["model"]["options"] = options
    for root, changes in nested.items():
        if changes:
            top[root] = getattr(base, root).replace(**changes)
    return base.replace(**top)


@dataclass(frozen=True)
class TuneSpec(_Spec):
    """A hyperparameter search, run by Optuna: a base TrainSpec and the ranges to try.

    ``space`` maps TrainSpec field paths (``lr``, ``batch_size``, ``optimizer``, ``weight_decay``,
    ``epochs``, ``init.scheme``, ``data.image_size``, ``model.arch``, ``model.options.hidden``, ...)
    to what a trial may pick::

        {"lr": {"low": 1e-4, "high": 1e-1, "log": true},   # float range (log scale)
         "batch_size": {"low": 16, "high": 128, "int": true, "step": 16},   # integer range
         "optimizer": ["adam", "sgd"],                       # choices
         "model.options.hidden": [[64], [128, 64]]}          # choices may be lists too

    ``metric`` is what a trial reports each epoch and is judged on (its best epoch's value); trials
    also keep their best checkpoint by it. ``direction`` defaults to minimize for losses, mae and
    rmse, maximize otherwise. ``storage`` is an Optuna storage URL (``sqlite:///study.db``) that
    several processes or machines share; ``study`` names the study in it (default
    ``"<data>-<arch>"``). ``trials`` counts the trials this process runs.
    """

    _nested: ClassVar[dict[str, type]] = {"base": TrainSpec}

    base: TrainSpec = field(default_factory=TrainSpec)
    space: dict = field(default_factory=dict)
    trials: int = 10
    metric: str = "val_loss"
    direction: str | None = None                # None: inferred from the metric
    storage: str | None = None                  # Optuna storage URL, shared between workers
    study: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.base, TrainSpec):
            raise SpecError("base must be a TrainSpec")
        _positive("trials", self.trials, integer=True)
        _choice("tuning metric", self.metric, TUNE_METRICS)
        if self.direction is None:   # frozen: settle the default once, so the JSON says it
            direction = "minimize" if lower_is_better(self.metric) else "maximize"
            object.__setattr__(self, "direction", direction)
        _choice("direction", self.direction, ("minimize", "maximize"))
        if self.base.nproc != 1:
            raise SpecError("tuning trains each trial in the tuning process: use nproc=1 in the base, "
                            "and share one study between several workers with storage=...")
        if self.base.monitor not in (None, self.metric):
            raise SpecError(f"the base monitors '{self.base.monitor}' but the study tunes "
                            f"'{self.metric}'; leave monitor unset or make them equal")
        self._check_space()

    def _check_space(self) -> None:
        if not isinstance(self.space, dict) or not self.space:
            raise SpecError("a search space needs at least one entry, e.g. "
                            "{\"lr\": {\"low\": 1e-4, \"high\": 1e-1, \"log\": true}}")
        for key, value in self.space.items():
            _check_path(key)
            for candidate in _candidates(key, value):
                try:      # every choice and both ends must make a valid TrainSpec
                    apply_params(self.base, {key: candidate})
                except UserError as e:
                    raise SpecError(f"space '{key}': {e.message}") from None

    def trial_spec(self, params: dict) -> TrainSpec:
        """The TrainSpec of one trial: the base with ``params`` applied, judged by ``metric``.

        Trials are never registered under the base's name themselves; the tuner registers the
        best-so-far one (see ``engine/tune.py``).
        """
        return apply_params(self.base, params).replace(monitor=self.metric, name=None)


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
