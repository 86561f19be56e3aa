"""``arch="layers"``: a model from a declarative JSON list of layers.

    [{"type": "conv2d", "out": 8, "kernel": 3, "padding": 1}, {"type": "relu"},
     {"type": "maxpool2d", "kernel": 2}, {"type": "flatten"},
     {"type": "linear", "out": 64}, {"type": "relu"}, {"type": "dropout", "p": 0.1},
     {"type": "linear"}]

In-features are found by pushing a dummy batch through the layers built so far (shape
propagation), not with Lazy modules, so a fresh build has every parameter's shape up front and a
stored state_dict loads into it. The last ``linear`` may omit ``out``: it gets ``info.n_outputs``.
``lstm``/``gru`` return the last step [N, H] (``"sequence": true``: every step [N, L, H]); on
right-padded text that last step is usually padding, so the ``lstm`` architecture, which reads
each row's last real token, is the better choice there.
Errors name the layer by its 0-based index in the list: ``layer 3 (linear): unknown key 'outt'``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ...errors import SpecError, UnknownNameError, unknown_name
from ..types import DataInfo
from .catalog import ARCHITECTURES
from .common import ACTIVATIONS, dummy_input

REQUIRED = object()          # marks a key a layer cannot do without


class Permute(nn.Module):
    """Reorders dimensions, e.g. series [N, window, 1] -> [N, 1, window] before conv1d."""

    def __init__(self, dims: list[int]):
        super().__init__()
        self.dims = [int(d) for d in dims]

    def forward(self, x):
        return x.permute(*self.dims)

    def extra_repr(self) -> str:
        return f"dims={self.dims}"


class Recurrent(nn.Module):
    """An LSTM/GRU layer returning its last step [N, H] (or every step [N, L, H])."""

    def __init__(self, cell: type[nn.RNNBase], n_in: int, out: int, layers: int,
                 bidirectional: bool, sequence: bool):
        super().__init__()
        self.rnn = cell(n_in, out, num_layers=layers, batch_first=True,
                        bidirectional=bidirectional)
        self.sequence = sequence

    def forward(self, x):
        out, _ = self.rnn(x)                    # [N, L, F] -> [N, L, H * directions]
        return out if self.sequence else out[:, -1]


def _rank(shape, *ranks: int, what: str) -> None:
    if len(shape) not in ranks:
        raise ValueError(f"expects {what} input")


def _show(shape) -> str:
    return "(" + ", ".join(["N", *map(str, shape[1:])]) + ")"


def _linear(p, shape, info):
    return nn.Linear(shape[-1], p["out"], bias=p["bias"])


def _conv(cls, rank, what):
    def make(p, shape, info):
        _rank(shape, rank, what=what)
        return cls(shape[1], p["out"], p["kernel"], p["stride"], p["padding"])
    return make


def _pool(cls, rank, what):
    def make(p, shape, info):
        _rank(shape, rank, what=what)
        return cls(p["kernel"], p["stride"])
    return make


def _batchnorm1d(p, shape, info):
    _rank(shape, 2, 3, what="[N, F] or [N, C, L]")
    return nn.BatchNorm1d(shape[1])


def _batchnorm2d(p, shape, info):
    _rank(shape, 4, what="[N, C, H, W]")
    return nn.BatchNorm2d(shape[1])


def _embedding(p, shape, info):
    if info.modality != "text":
        raise ValueError(f"needs text (token id) input; this data is {info.modality}")
    return nn.Embedding(info.vocab_size, p["out"], padding_idx=0)


def _recurrent(cell):
    def make(p, shape, info):
        _rank(shape, 3, what="[N, L, F] (use an embedding first for text)")
        return Recurrent(cell, shape[-1], p["out"], p["layers"], bool(p["bidirectional"]),
                         bool(p["sequence"]))
    return make


Factory = Callable[[dict, tuple, DataInfo], nn.Module]
CONV = {"out": REQUIRED, "kernel": 3, "stride": 1, "padding": 0}
POOL = {"kernel": 2, "stride": None}
RNN = {"out": REQUIRED, "layers": 1, "bidirectional": False, "sequence": False}

LAYER_TYPES: dict[str, tuple[Factory, dict]] = {
    "linear": (_linear, {"out": REQUIRED, "bias": True}),
    "conv1d": (_conv(nn.Conv1d, 3, "[N, C, L]"), CONV),
    "conv2d": (_conv(nn.Conv2d, 4, "[N, C, H, W]"), CONV),
    "maxpool1d": (_pool(nn.MaxPool1d, 3, "[N, C, L]"), POOL),
    "avgpool1d": (_pool(nn.AvgPool1d, 3, "[N, C, L]"), POOL),
    "maxpool2d": (_pool(nn.MaxPool2d, 4, "[N, C, H, W]"), POOL),
    "avgpool2d": (_pool(nn.AvgPool2d, 4, "[N, C, H, W]"), POOL),
    "batchnorm1d": (_batchnorm1d, {}),
    "batchnorm2d": (_batchnorm2d, {}),
    "layernorm": (lambda p, shape, info: nn.LayerNorm(shape[-1]), {}),
    "dropout": (lambda p, shape, info: nn.Dropout(p["p"]), {"p": 0.5}),
    "flatten": (lambda p, shape, info: nn.Flatten(), {}),
    "permute": (lambda p, shape, info: Permute(p["dims"]), {"dims": REQUIRED}),
    "embedding": (_embedding, {"out": 64}),
    "lstm": (_recurrent(nn.LSTM), RNN),
    "gru": (_recurrent(nn.GRU), RNN),
    **{name: (lambda p, shape, info, cls=cls: cls(), {}) for name, cls in ACTIVATIONS.items()},
}


def _params(i: int, layer, last_linear: int, info: DataInfo) -> tuple[str, dict]:
    if not isinstance(layer, dict) or not isinstance(layer.get("type"), str):
        raise SpecError(f"layer {i}: needs a mapping with a 'type', got {layer!r}")
    kind = layer["type"]
    if kind not in LAYER_TYPES:
        err = unknown_name("layer type", kind, LAYER_TYPES)
        raise UnknownNameError(f"layer {i}: {err.message}")
    defaults = dict(LAYER_TYPES[kind][1])
    if kind == "linear" and i == last_linear:
        defaults["out"] = info.n_outputs
    for key in layer:
        if key != "type" and key not in defaults:
            err = unknown_name("key", key, defaults)
            raise SpecError(f"layer {i} ({kind}): {err.message.replace('; known:', '; valid:')}")
    params = {**defaults, **{k: v for k, v in layer.items() if k != "type"}}
    for key, value in params.items():
        if value is REQUIRED:
            why = " (only the last linear may omit it)" if kind == "linear" else ""
            raise SpecError(f"layer {i} ({kind}): needs '{key}'{why}")
    out = params.get("out")
    if out is not None and (isinstance(out, bool) or not isinstance(out, int) or out <= 0):
        raise SpecError(f"layer {i} ({kind}): 'out' must be a positive integer, got {out!r}")
    return kind, params


def build_layers(layers: list, info: DataInfo) -> nn.Sequential:
    last_linear = max((i for i, l in enumerate(layers)
                       if isinstance(l, dict) and l.get("type") == "linear"), default=-1)
    if info.modality == "text" and (not isinstance(layers[0], dict)
                                    or layers[0].get("type") != "embedding"):
        raise SpecError("text data is token ids: start the layers with "
                        "{'type': 'embedding', 'out': 64}")
    modules: list[nn.Module] = []
    x = dummy_input(info)
    for i, layer in enumerate(layers):
        kind, params = _params(i, layer, last_linear, info)
        try:
            module = LAYER_TYPES[kind][0](params, tuple(x.shape), info)
            with torch.no_grad():
                x = module.eval()(x)
        except (TypeError, ValueError, RuntimeError, IndexError) as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise SpecError(f"layer {i} ({kind}) on input {_show(tuple(x.shape))}: {msg}") from None
        modules.append(module.train())
    if tuple(x.shape) != (len(x), info.n_outputs):
        raise SpecError(f"the layers end with shape {_show(tuple(x.shape))}; this data needs "
                        f"(N, {info.n_outputs}): end with {{'type': 'flatten'}} and/or "
                        f"{{'type': 'linear'}}")
    return nn.Sequential(*modules)


@ARCHITECTURES.register(
    "layers", family="custom", modalities=("image", "tabular", "series", "text"),
    tasks=("classification", "regression", "forecast"),
    description="your own stack of layers, declared as a JSON list (spec.layers)",
)
def build(info: DataInfo, *, layers: list | None = None) -> nn.Module:
    if not layers:
        raise SpecError("arch 'layers' needs a non-empty 'layers' list")
    return build_layers(layers, info)
