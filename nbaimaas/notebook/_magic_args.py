"""Turning a magic's words into ``nbaimaas.api`` arguments: flags, notebook variables, cell bodies
(TOML, or YAML).

Nothing here talks to a backend; it only builds the keywords ``api`` takes, and turns user
mistakes into IPython's one-line ``UsageError``.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import argument

from ..errors import NbaimaasError
from ..results import ModelVersion, TrainResult
from ..specs import ModelSpec

__all__ = [
    "user_errors", "one_line", "lookup", "resolve_data", "resolve_model", "model_ref",
    "train_flags", "data_flags", "train_kwargs", "data_kwargs", "DATA_FLAGS", "TRAIN_FLAGS",
    "tune_flags", "tune_kwargs", "TUNE_FLAGS",
]

#: Flags that land in the DataSpec, and those that land in the TrainSpec itself.
DATA_FLAGS = ("target", "limit", "image_size", "window", "horizon")
TRAIN_FLAGS = ("optimizer", "lr", "epochs", "batch_size", "schedule", "early_stop", "monitor",
               "seed", "name", "nproc")
#: Flags (and top-level keys of a %%aimaas_tune cell) that set up the search, not the runs.
TUNE_FLAGS = ("trials", "metric", "direction", "storage", "study")
_RANGE_KEYS = {"low", "high", "log", "int", "step"}


# -- errors ------------------------------------------------------------------------------------
def one_line(text: str) -> str:
    return " ".join(str(text).split())


@contextmanager
def user_errors() -> Iterator[None]:
    """Show deliberate nbaimaas errors as a one-line UsageError; anything else is a bug and
    keeps its traceback."""
    try:
        yield
    except NbaimaasError as e:  # UserError, TrainingError (NaN loss, OOM), ServiceError, ...
        raise UsageError(one_line(str(e))) from None


# -- notebook variables ------------------------------------------------------------------------
def lookup(ns: dict, name: str) -> Any:
    name = name.strip()
    if name not in ns:
        raise UsageError(f"name '{name}' is not defined in the notebook")
    return ns[name]


def _variable(ns: dict, token: str) -> Any:
    """The notebook variable ``token`` names, or None (literal names and refs are not variables)."""
    if not token.isidentifier() or token not in ns:
        return None
    value = ns[token]
    return None if isinstance(value, ModuleType) else value


def resolve_data(ns: dict, token: str | None) -> Any:
    """``X,y`` -> a tuple of variables; a variable name -> its value; else a dataset name/path."""
    if token is None:
        return None
    if "," in token:
        return tuple(lookup(ns, part) for part in token.split(",") if part.strip())
    value = _variable(ns, token)
    return token if value is None else value


def _is_module(obj: Any) -> bool:
    # Duck-typed so the notebook layer never imports torch: an nn.Module has these three.
    return all(hasattr(obj, a) for a in ("state_dict", "parameters", "forward"))


def resolve_model(ns: dict, token: str | None) -> Any:
    """A variable holding an nn.Module / ModelSpec / dict passes through; anything else is an
    architecture name (a variable called ``mlp`` that holds numbers must not shadow ``mlp``)."""
    if token is None:
        return None
    value = _variable(ns, token)
    if value is not None and (_is_module(value) or isinstance(value, (ModelSpec, dict))):
        return value
    return token


def model_ref(ns: dict, token: str) -> str:
    """A registry reference from ``digits-cnn:2``, or from a variable holding a ref, a
    ModelVersion or a TrainResult (``-o r`` of a training run)."""
    value = _variable(ns, token)
    if value is None:
        return token
    if isinstance(value, str):
        return value
    if isinstance(value, ModelVersion):
        return value.ref
    if isinstance(value, TrainResult):
        if not value.model:
            raise UsageError(f"run {value.run_id} registered no model; train with --name NAME")
        return value.model
    return token


# -- flags -------------------------------------------------------------------------------------
def _apply(func: Callable, decorators: list) -> Callable:
    # magic_arguments reverses the decorator list, so apply bottom-up to keep the help order.
    for deco in reversed(decorators):
        func = deco(func)
    return func


def data_flags(func: Callable) -> Callable:
    return _apply(func, [
        argument("--target", help="label column of a table, or the series to forecast"),
        argument("--limit", type=int, help="keep only the first N samples (quick experiments)"),
        argument("--image-size", dest="image_size", type=int, help="resize images to this side"),
        argument("--window", type=int, help="series: input window length"),
        argument("--horizon", type=int, help="series: steps forecast at once"),
    ])


def train_flags(func: Callable) -> Callable:
    """The TrainSpec flags shared by %aimaas_train and %aimaas_lr_find."""
    func = data_flags(func)
    return _apply(func, [
        argument("--data", help="built-in dataset, CSV/folder path, a variable, or X,y variables"),
        argument("--model", help="architecture name (see ai.architectures()) or an nn.Module variable"),
        argument("--init", help="initialisation scheme, e.g. kaiming_normal"),
        argument("--optimizer", help="sgd, adam or adamw"),
        argument("--lr", type=float, help="learning rate"),
        argument("--epochs", type=int, help="number of epochs"),
        argument("--batch-size", dest="batch_size", type=int, help="samples per batch"),
        argument("--schedule", help="constant, step, cosine or onecycle"),
        argument("--early-stop", dest="early_stop", type=int, help="patience in epochs"),
        argument("--monitor", help="metric for the best checkpoint (default val_loss)"),
        argument("--seed", type=int, help="random seed of the split and the initialisation"),
        argument("--name", help="register the best model under this name"),
        argument("--nproc", type=int, help="train on N processes with torchrun + DDP (default 1)"),
    ])


def data_kwargs(args: Any) -> dict:
    return {k: getattr(args, k) for k in DATA_FLAGS if getattr(args, k, None) is not None}


def train_kwargs(args: Any, ns: dict, body: str | None = None) -> dict:
    """Keywords for ``api.start_training``: the cell's spec, then the line's flags on top."""
    kw = body_kwargs(body, ns) if body and body.strip() else {}
    if args.data is not None:
        kw["data"] = resolve_data(ns, args.data)
    if args.model is not None:
        kw["model"] = resolve_model(ns, args.model)
        kw.pop("layers", None)          # a named architecture replaces the cell's layer list
    if args.init is not None:
        init = kw.get("init")
        kw["init"] = {**init, "scheme": args.init} if isinstance(init, dict) else args.init
    for key in DATA_FLAGS + TRAIN_FLAGS:
        if getattr(args, key, None) is not None:
            kw[key] = getattr(args, key)
    return kw


# -- the %%aimaas_train body -------------------------------------------------------------------
def body_kwargs(body: str, ns: dict) -> dict:
    """A TrainSpec in TOML or YAML -> api keywords: top-level fields, ``data``, ``model``, ``init``."""
    doc = parse_body(body)
    kw = dict(doc)
    data = kw.pop("data", None)
    if isinstance(data, dict):
        fields = dict(data)
        source = str(fields.pop("name", "digits"))   # [data] name is the dataset, not the model
        kw.update(fields)               # data fields sit beside train fields in api.train
        kw["data"] = resolve_data(ns, source)
    elif data is not None:
        kw["data"] = resolve_data(ns, str(data))
    kw.update(_model_kwargs(kw.pop("model", None), ns))
    return kw


def parse_body(body: str) -> dict:
    """The cell as TOML (``epochs = 3``, ``[data]``), else as YAML (``epochs: 3``, ``data:``).

    YAML is read with ``safe_load`` (plain data, never objects) and needs PyYAML, which the
    notebook extra installs.
    """
    try:
        return tomllib.loads(body)
    except tomllib.TOMLDecodeError as e:
        toml_error = one_line(e)
    try:
        import yaml
    except ImportError:
        raise UsageError(f"the cell is not valid TOML: {toml_error} (YAML bodies need PyYAML: "
                         "pip install 'nbaimaas[notebook]')") from None
    try:
        doc = yaml.safe_load(body)
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise UsageError(f"the cell is neither valid TOML ({toml_error}) nor valid YAML "
                         f"({getattr(e, 'problem', None) or 'parse error'}{at})") from None
    if not isinstance(doc, dict):
        raise UsageError(f"the cell is not valid TOML ({toml_error}), and as YAML it is a "
                         f"{type(doc).__name__}, not fields such as 'epochs: 3'")
    return doc


def _model_kwargs(model: Any, ns: dict) -> dict:
    if model is None:
        return {}
    if not isinstance(model, dict):
        return {"model": resolve_model(ns, str(model))}
    extra = set(model) - {"arch", "options", "layers"}
    if extra:
        raise UsageError(f"unknown [model] key '{sorted(extra)[0]}'; use arch, options, layers")
    out: dict = {"model": resolve_model(ns, model.get("arch", "mlp"))}
    if "options" in model:
        out["options"] = model["options"]
    if "layers" in model:
        out["layers"] = model["layers"]
    return out


# -- %aimaas_tune ------------------------------------------------------------------------------
def tune_flags(func: Callable) -> Callable:
    """%aimaas_train's flags plus the search's own."""
    func = train_flags(func)
    return _apply(func, [
        argument("--space", help='search space as a JSON object, e.g. \'{"lr": {"low": 1e-4, "high": 0.1, '
                                 '"log": true}, "optimizer": ["adam", "sgd"]}\''),
        argument("--trials", type=int, help="trials to run in this process (default 10)"),
        argument("--metric", help="what trials are judged on (default val_loss)"),
        argument("--direction", help="minimize or maximize (default: from the metric)"),
        argument("--storage", help="Optuna storage URL shared by workers, e.g. sqlite:///study.db"),
        argument("--study", help="study name in the storage (default <data>-<arch>)"),
    ])


def tune_kwargs(args: Any, ns: dict, body: str | None = None) -> dict:
    """Keywords for ``api.tune``: the cell's spec (TrainSpec fields, search settings, ``[space]``),
    then the line's flags on top (``--space`` entries replace the cell's of the same name)."""
    kw = train_kwargs(args, ns, body)
    space = _flat_space(kw.pop("space", {}))
    if args.space is not None:
        space.update(_json_space(args.space))
    kw["space"] = space
    for key in TUNE_FLAGS:
        if getattr(args, key, None) is not None:
            kw[key] = getattr(args, key)
    return kw


def _json_space(text: str) -> dict:
    text = text.strip()
    if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]        # magic_arguments splits like Windows: quotes stay on the word
    try:
        space = json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"--space is not valid JSON: {one_line(e)}") from None
    if not isinstance(space, dict):
        raise UsageError(f"--space must be a JSON object such as '{{\"lr\": [0.01, 0.1]}}', got {text}")
    return space


def _flat_space(space: Any, prefix: str = "") -> dict:
    """TOML reads ``init.scheme = [...]`` under ``[space]`` as nested tables: join them back into
    field paths, keeping ranges (``{low, high, ...}``) whole."""
    if not isinstance(space, dict):
        raise UsageError("[space] must be a table of field = choices or range")
    out: dict = {}
    for key, value in space.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and not set(value) & _RANGE_KEYS:
            out.update(_flat_space(value, path + "."))
        else:
            out[path] = value
    return out
