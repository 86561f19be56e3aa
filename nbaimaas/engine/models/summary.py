"""Looking at a model: a layer-by-layer summary, and checking a user's own nn.Module."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from ...errors import IncompatibleError
from ...results import ModelSummary
from ..types import DataInfo
from .common import dummy_input


def _first_tensor(out):
    """A layer's output, or the first tensor of a tuple (LSTM, attention)."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, PackedSequence):  # rows of all samples flattened: no per-sample shape
        return None
    if isinstance(out, (tuple, list)):
        for item in out:
            found = _first_tensor(item)
            if found is not None:
                return found
    return None


def _run_with_hooks(model: nn.Module, info: DataInfo) -> dict[str, list]:
    shapes: dict[str, list] = {}

    def hook(name):
        def record(module, inputs, output):
            t = _first_tensor(output)
            if t is not None:
                shapes[name] = list(t.shape[1:])
        return record

    handles = [m.register_forward_hook(hook(name)) for name, m in model.named_modules() if name]
    was_training = model.training
    try:
        # eval mode so batch-norm statistics are not touched; grad enabled on purpose: in
        # no-grad eval, Transformer layers take a fused fast path that skips their sublayers' hooks
        model.eval()
        model(dummy_input(info).to(_device(model)))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return shapes


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def summary(model: nn.Module, info: DataInfo) -> ModelSummary:
    """One row per leaf layer (and per container holding parameters of its own); each parameter
    is counted once, in the module that owns it, so the rows add up to the total."""
    shapes = _run_with_hooks(model, info)
    rows, seen = [], set()
    for name, module in model.named_modules():
        own = [p for p in module.parameters(recurse=False) if id(p) not in seen]
        seen.update(id(p) for p in own)
        is_leaf = next(module.children(), None) is None
        if not name or not (is_leaf or own):
            continue
        rows.append({"layer": name, "type": type(module).__name__, "output": shapes.get(name),
                     "params": sum(p.numel() for p in own)})
    params = list({id(p): p for p in model.parameters()}.values())
    return ModelSummary(rows, sum(p.numel() for p in params),
                        sum(p.numel() for p in params if p.requires_grad))


def wrap_module(module: nn.Module, info: DataInfo) -> nn.Module:
    """Check that a user's own module maps a batch of this data to [N, info.n_outputs].

    Returns the module itself: it trains, saves and predicts like a catalog model (rebuilding it
    from a spec is the caller's business, as its code is not in the catalog)."""
    if not isinstance(module, nn.Module):
        raise IncompatibleError(f"expected a torch.nn.Module, got {type(module).__name__}")
    x = dummy_input(info)
    was_training = module.training
    try:
        module.eval()
        with torch.no_grad():
            out = module(x.to(_device(module)))
    except Exception as e:  # the user's code: any failure means "does not fit this data"
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise IncompatibleError(f"your module fails on a batch shaped {tuple(x.shape)} "
                                f"({x.dtype}): {type(e).__name__}: {first}") from e
    finally:
        module.train(was_training)
    want = (len(x), info.n_outputs)
    got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
    if got != want:
        raise IncompatibleError(f"your module returns shape {got}; this data needs {want}",
                                hint=_what_outputs(info))
    return module


def _what_outputs(info: DataInfo) -> str:
    if info.task == "classification":
        return f"one logit per class ({info.n_outputs} classes), no softmax"
    if info.task == "forecast":
        return f"one value per forecast step (horizon {info.n_outputs})"
    return f"{info.n_outputs} regression target(s) per sample"
