"""Training checkpoints: plain dicts of tensors and numbers, written atomically.

A checkpoint holds everything a run needs to continue exactly where it stopped: model,
optimiser and scheduler state, the RNG states (global torch RNG for dropout, the shuffling
generator), the epoch, the best value so far and the history. They are our own files, so
``torch.load(weights_only=True)`` reads them (no arbitrary unpickling, never a fallback).
"""

from __future__ import annotations

import io
from pathlib import Path

import torch

from .store import atomic_write_bytes

LAST, BEST = "last.pt", "best.pt"


def save_checkpoint(path: Path, state: dict) -> Path:
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())
    return path


def load_checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def cpu_state(module_or_optim) -> dict:
    """A state dict copied to the CPU, so a checkpoint never aliases live training tensors."""
    state = module_or_optim.state_dict()
    return _to_cpu(state)


def _to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj
