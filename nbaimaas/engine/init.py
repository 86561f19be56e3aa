"""Parameter initialisation by layer type, reproducible from a seed.

    initialize(model, InitSpec(scheme="kaiming_normal"), seed=0)
    -> {"scheme": "kaiming_normal", ..., "layers": {"Linear": 3, "Conv2d": 2, ...}}

What each layer gets:
- Linear / Conv1d / Conv2d / Conv3d weights, and a MultiheadAttention's packed input
  projection: ``spec.scheme``. The kaiming schemes use fan_in and the ReLU gain.
- LSTM / GRU: ``weight_ih`` gets ``spec.scheme`` and ``weight_hh`` gets ``spec.recurrent``, each
  applied per gate chunk (an LSTM's [4H, H] matrix is four separate maps; an orthogonal 4Hx H
  block would not make each gate's map orthogonal).
- Embedding / EmbeddingBag: N(0, 1) whatever the scheme (torch's own default), the pad row zero.
  Embeddings are lookup tables, not matrix products, so fan-based scaling does not apply.
- BatchNorm / LayerNorm / GroupNorm: weight 1, bias 0.
- Biases: ``spec.bias == "zero"`` sets every bias to 0, except the LSTM forget gate, which
  starts at 1 (on ``bias_ih``; ``bias_hh`` stays 0) so the cell remembers by default
  (Jozefowicz et al. 2015). ``"default"`` keeps torch's.

Reproducibility: ``scheme="default"`` re-runs each layer's own ``reset_parameters`` from the seed
(inside ``torch.random.fork_rng``, so the global RNG is left as it was); the other schemes draw
from a local ``torch.Generator``. Same seed => identical parameters; the global RNG is untouched.
Values are drawn on the CPU and copied in, so the model may already be on a GPU.
"""

from __future__ import annotations

from collections import Counter

import torch
from torch import nn

from ..specs import InitSpec

__all__ = ["initialize"]

CONVS_AND_LINEAR = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
NORMS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)
RECURRENT = (nn.LSTM, nn.GRU)
EMBEDDINGS = (nn.Embedding, nn.EmbeddingBag)


def _draw(scheme: str, shape: torch.Size, g: torch.Generator) -> torch.Tensor:
    w = torch.empty(shape)
    if scheme == "xavier_uniform":
        nn.init.xavier_uniform_(w, generator=g)
    elif scheme == "xavier_normal":
        nn.init.xavier_normal_(w, generator=g)
    elif scheme == "kaiming_uniform":
        nn.init.kaiming_uniform_(w, mode="fan_in", nonlinearity="relu", generator=g)
    elif scheme == "kaiming_normal":
        nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="relu", generator=g)
    elif scheme == "orthogonal":
        nn.init.orthogonal_(w, generator=g)
    else:
        raise ValueError(f"no drawing rule for scheme {scheme!r}")
    return w


@torch.no_grad()
def _set(param: torch.Tensor | None, scheme: str, g: torch.Generator, chunks: int = 1) -> None:
    """Redraw ``param`` with ``scheme`` (per chunk along dim 0); "default" leaves it alone."""
    if param is None or scheme == "default":
        return
    for part in param.chunk(chunks, dim=0):
        part.copy_(_draw(scheme, part.shape, g))


@torch.no_grad()
def _reset_defaults(model: nn.Module, seed: int) -> None:
    """Torch's own initialisation, replayed from ``seed`` without disturbing the global RNG."""
    cuda = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=cuda):
        torch.default_generator.manual_seed(seed)
        for i in cuda:
            torch.cuda.default_generators[i].manual_seed(seed)
        # children before parents: a parent's reset (MultiheadAttention zeroing its out_proj
        # bias) must win over the child's, as it does when torch builds the module
        for module in reversed(list(model.modules())):
            for name in ("reset_parameters", "_reset_parameters"):
                reset = getattr(module, name, None)
                if callable(reset):
                    reset()
                    break


def _zero_bias(module: nn.Module) -> None:
    for name, p in module.named_parameters(recurse=False):
        if name.startswith("bias") or name.endswith("_bias"):
            p.zero_()


@torch.no_grad()
def _init_recurrent(module: nn.RNNBase, spec: InitSpec, g: torch.Generator) -> None:
    gates = 4 if isinstance(module, nn.LSTM) else 3
    for name, p in module.named_parameters(recurse=False):
        if name.startswith("weight_ih"):
            _set(p, spec.scheme, g, gates)
        elif name.startswith("weight_hh"):
            _set(p, spec.recurrent, g, gates)
        elif name.startswith("bias") and spec.bias == "zero":
            p.zero_()
            if isinstance(module, nn.LSTM) and name.startswith("bias_ih"):
                p.chunk(4)[1].fill_(1.0)      # gate order i, f, g, o: f is chunk 1


def _kind(module: nn.Module) -> str:
    """The name a module is reported under: the rule's class (a subclass of Linear counts as
    Linear), else its own type."""
    for cls in CONVS_AND_LINEAR:
        if isinstance(module, cls):
            return cls.__name__
    return type(module).__name__


@torch.no_grad()
def _init_module(module: nn.Module, spec: InitSpec, g: torch.Generator) -> bool:
    """Initialise one module's own parameters; True when its type has a rule here."""
    if isinstance(module, CONVS_AND_LINEAR):
        _set(module.weight, spec.scheme, g)
    elif isinstance(module, nn.MultiheadAttention):
        _set(module.in_proj_weight, spec.scheme, g)       # None when q, k, v differ in size
        for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
            _set(getattr(module, name, None), spec.scheme, g)
    elif isinstance(module, RECURRENT):
        _init_recurrent(module, spec, g)
        return True
    elif isinstance(module, EMBEDDINGS):
        module.weight.copy_(torch.randn(module.weight.shape, generator=g))
        if module.padding_idx is not None:
            module.weight[module.padding_idx].zero_()
        return True
    elif isinstance(module, NORMS):
        if getattr(module, "weight", None) is not None:
            module.weight.fill_(1.0)
        if getattr(module, "bias", None) is not None:
            module.bias.zero_()
        return True
    else:
        return False
    if spec.bias == "zero":
        _zero_bias(module)
    return True


def initialize(model: nn.Module, spec: InitSpec, seed: int) -> dict:
    """Apply ``spec`` to every layer of ``model`` in place; returns what was touched."""
    _reset_defaults(model, seed)
    g = torch.Generator().manual_seed(seed)
    touched: Counter[str] = Counter()
    for module in model.modules():       # a fixed order, so the draws are reproducible
        if _init_module(module, spec, g):
            touched[_kind(module)] += 1
    return {"scheme": spec.scheme, "recurrent": spec.recurrent, "bias": spec.bias, "seed": seed,
            "layers": dict(sorted(touched.items()))}
