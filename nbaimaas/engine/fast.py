"""The training loop's fast paths (DESIGN "Speed"), kept out of ``loop.py`` so it stays readable.

    runner = StepRunner(model, loss_fn, optimizer, train, spec, device)
    loss = runner.step(idx)        # one optimiser step on train.x[idx]; the loss stays on the device
    meter = LossMeter(device, len(train), batch_size)
    meter.add(step, loss, n)       # CPU: a free host read; CUDA: a device write, no sync
    writer = CheckpointWriter(emit) # checkpoints written off the training thread, newest wins

On the CPU a step is the plain eager step, with nothing added per step. On CUDA:
  - bf16 autocast when ``precision`` is "auto" or "bf16" and the GPU supports it;
  - channels_last for models with 2-D convolutions (tensor cores want NHWC);
  - the whole step (gather of the batch from the resident data, forward, loss, backward, gradient
    clipping, optimiser) captured once in a CUDA graph and replayed, when shapes are static.
    Full batches replay the graph; the last, partial batch of an epoch runs eagerly on the same
    parameters and optimiser state (no sample is dropped, nothing is padded), so graph training
    is the same computation as eager training. Where capture is impossible (a schedule that
    changes more than a tensor learning rate, or capture itself fails), the runner trains eagerly
    and says so once through ``notices``.
"""

from __future__ import annotations

import contextlib
import math
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ..events import Checkpointed
from .checkpoint import save_checkpoint
from .types import Split

WARMUP_STEPS = 3        # eager steps on a side stream before capture (allocator, cuDNN, lazy state)


def use_bf16(precision: str, device: torch.device) -> bool:
    """bf16 autocast: asked for explicitly, or "auto" on a CUDA device that has it."""
    if precision == "bf16":
        return True
    return precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()


def has_conv2d(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def graph_blocker(spec, optimizer: torch.optim.Optimizer, device: torch.device) -> str | None:
    """Why the whole step cannot be one CUDA graph here, or None when it can."""
    if device.type != "cuda":
        return "not on CUDA"
    if spec.schedule == "onecycle":
        return "the one-cycle schedule changes momentum between steps"
    if spec.schedule != "constant" and "capturable" not in optimizer.defaults:
        return f"{spec.optimizer} with a learning-rate schedule cannot take a tensor learning rate"
    return None


class StepRunner:
    """Runs one training step per call on a batch of indices into the resident training split."""

    def __init__(self, model: nn.Module, loss_fn: nn.Module, optimizer: torch.optim.Optimizer,
                 train: Split, spec, device: torch.device, use_graph: bool = True):
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.clip = spec.grad_clip
        self.batch_size = spec.batch_size
        self.bf16 = use_bf16(spec.precision, device)
        self.channels_last = device.type == "cuda" and train.x.dim() == 4 and has_conv2d(model)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        self.x, self.y = train.x, train.y
        self.notices: list[str] = []
        self.graph_wanted = use_graph and graph_blocker(spec, optimizer, device) is None
        self.graph: torch.cuda.CUDAGraph | None = None
        self._eager_steps = 0
        if self.graph_wanted:
            _make_capturable(optimizer, device)
        else:
            _make_eager(optimizer)

    def autocast(self):
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.x.device.type, dtype=torch.bfloat16)

    def step(self, idx: torch.Tensor) -> torch.Tensor:
        """One optimiser step on ``train[idx]``; returns the batch's mean loss, detached."""
        full = len(idx) == self.batch_size
        if self.graph is not None and full:
            self._idx.copy_(idx)
            self.graph.replay()
            return self._loss
        if not (self.graph_wanted and full):
            return self._eager(idx)                      # CPU, no graph, or the partial batch
        if self._eager_steps < WARMUP_STEPS:
            self._eager_steps += 1
            return self._on_side_stream(self._eager, idx)
        self._capture(idx)
        return self.step(idx)                            # capture records but does not run: replay

    def _eager(self, idx: torch.Tensor) -> torch.Tensor:
        loss = self._forward(idx)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self._update()
        return loss.detach()

    def _forward(self, idx: torch.Tensor) -> torch.Tensor:
        xb, yb = self.x[idx], self.y[idx]               # xb: [B, ...], yb: [B] or [B, out]
        if self.channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with self.autocast():
            return self.loss_fn(self.model(xb), yb).float()

    def _update(self) -> None:
        if self.clip:
            nn.utils.clip_grad_norm_(self.params, self.clip)
        self.optimizer.step()

    def _on_side_stream(self, fn, *args):
        """Warm-up steps run on a side stream, as the CUDA graph recipe asks, then rejoin."""
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            out = fn(*args)
        torch.cuda.current_stream().wait_stream(side)
        return out

    def _capture(self, idx: torch.Tensor) -> None:
        """Record gather, forward, backward and optimiser step of a full batch as one CUDA graph.

        Each replay reads the batch's indices from a static buffer; the parameters, gradients
        and optimiser state keep their addresses, so replays train the same tensors."""
        self.graph_wanted = False                        # one attempt: a failure falls back for good
        try:
            self._idx = idx.clone()
            self.optimizer.zero_grad(set_to_none=True)   # grads get allocated in the graph's pool
            graph = torch.cuda.CUDAGraph()
            # thread_local: CUDA work another thread does meanwhile (the notebook's) must not break it
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                loss = self._forward(self._idx)
                loss.backward()
                self._update()
                self._loss = loss.detach()
            self.graph = graph
        except Exception as exc:  # noqa: BLE001 - any capture failure means: train eagerly
            self.graph = None
            self.notice(f"CUDA graph capture failed ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
                        "training eagerly")

    def notice(self, line: str) -> None:
        self.notices.append(line)
        warnings.warn(line, RuntimeWarning, stacklevel=2)

    def describe(self) -> str:
        """One line: which fast paths this run uses, e.g. "bf16, channels_last, CUDA graph"."""
        used = [name for name, on in (("bf16", self.bf16), ("channels_last", self.channels_last),
                                      ("CUDA graph", self.graph is not None)) if on]
        return ", ".join(used) or "eager fp32"


def _make_capturable(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """Optimiser state that lives on the device, so its step can be replayed from a graph.

    Adam/AdamW keep their step count on the host unless ``capturable``; a tensor learning rate
    lets a schedule change it between replays (the scheduler fills it in place)."""
    for group in optimizer.param_groups:
        if "capturable" in group:
            group["capturable"] = True
            if not isinstance(group["lr"], torch.Tensor):
                group["lr"] = torch.tensor(float(group["lr"]), device=device)
    for state in optimizer.state.values():               # resumed state: step counts to the device
        if "step" in state and isinstance(state["step"], torch.Tensor):
            state["step"] = state["step"].to(device, torch.float32)


def _make_eager(optimizer: torch.optim.Optimizer) -> None:
    """Undo ``_make_capturable`` where a checkpoint made on a GPU resumes without a graph."""
    for group in optimizer.param_groups:
        if group.get("capturable") and not all(p.is_cuda for p in group["params"]):
            group["capturable"] = False
        if isinstance(group["lr"], torch.Tensor) and not group.get("capturable"):
            group["lr"] = float(group["lr"])


class LossMeter:
    """The running training loss of one epoch, and the exact step where it stopped being finite.

    On the CPU a tensor's value is a plain memory read, so each step's loss is read at once and
    summed in Python: cheaper than two tensor ops, and a NaN is caught at the step it happens.
    On CUDA each loss is written into a device buffer (one tiny copy, no sync) and read back only
    when asked, at progress ticks; the first non-finite entry then names the step."""

    def __init__(self, device: torch.device, n: int, batch_size: int):
        self.on_host = device.type == "cpu"
        self.total, self.seen, self.bad_step = 0.0, 0, None
        if not self.on_host:
            steps = math.ceil(n / batch_size)
            self.losses = torch.zeros(steps, device=device)
            self.sizes = torch.full((steps,), float(batch_size), device=device)
            self.sizes[-1] = n - (steps - 1) * batch_size      # only the last batch can be short
            self.checked = 0

    def add(self, step: int, loss: torch.Tensor, n: int) -> None:
        self.seen += n
        if self.on_host:
            value = loss.item()
            self.total += value * n
            if self.bad_step is None and not math.isfinite(value):
                self.bad_step = step
        else:
            self.losses[step - 1].copy_(loss)

    def first_nonfinite(self, upto: int) -> int | None:
        """The first step (1-based) whose loss was not finite, among steps up to ``upto``."""
        if self.on_host or self.bad_step is not None:
            return self.bad_step
        bad = (~torch.isfinite(self.losses[self.checked:upto])).nonzero()
        if len(bad):
            self.bad_step = self.checked + int(bad[0]) + 1
        self.checked = upto
        return self.bad_step

    def mean(self, upto: int) -> float:
        if self.on_host:
            return self.total / max(self.seen, 1)
        return float(self.losses[:upto] @ self.sizes[:upto]) / max(self.seen, 1)


class CheckpointWriter:
    """Writes checkpoints on a background thread, so an epoch never waits for the disk.

    ``save_checkpoint`` serialises (about a millisecond of CPU even for a small model) and fsyncs
    (a checkpoint must survive a crash: tens of milliseconds), together longer than a whole epoch
    of a small model. The first checkpoint of a run is written at once, on the caller's thread,
    so a resume point exists (and is announced) from the first epoch on. After that the training
    thread hands over states already copied to the CPU; every ``min_interval_s`` the writer wakes
    and writes the newest state per file (a newer state replaces a queued one), so on a crash of
    the process at most that interval of training is lost, and the writer stays out of the
    training thread's way (serialising holds the GIL) in between. ``close`` writes what is queued
    at once, waits until it is on disk and re-raises a write error: a run never reports its end
    before its checkpoints."""

    def __init__(self, emit: Callable[..., object], min_interval_s: float = 0.5):
        self.emit = emit                                     # emit(EventClass, **fields)
        self.min_interval_s = min_interval_s
        self._closing = threading.Event()
        self._pending: dict[Path, tuple[dict, dict]] = {}   # path -> (state, Checkpointed fields)
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        self._first = True
        self._thread = threading.Thread(target=self._main, name="nbaimaas-checkpoints", daemon=True)
        self._thread.start()

    def submit(self, path: Path, state: dict, epoch: int, which: str) -> None:
        event = {"epoch": epoch, "which": which, "path": str(path)}
        if self._first:
            self._first = False
            self._write(path, state, event)
            return
        with self._lock:
            self._pending[path] = (state, event)

    def close(self) -> None:
        self._closing.set()
        self._thread.join()
        if self._error is not None:
            raise self._error

    def _write(self, path: Path, state: dict, event: dict) -> None:
        save_checkpoint(path, state)
        self.emit(Checkpointed, **event)

    def _main(self) -> None:
        while not self._closing.wait(self.min_interval_s):
            self._drain()
        self._drain()

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._pending:
                    return
                path = next(iter(self._pending))
                state, event = self._pending.pop(path)
            try:
                self._write(path, state, event)
            except BaseException as exc:  # noqa: BLE001 - surfaced by close() on the training thread
                self._error = self._error or exc
