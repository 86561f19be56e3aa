"""Losses and validation metrics per task.

Metrics are accumulated on the device (sums and a confusion matrix) and read back once per
evaluation, so validating never forces a host sync per batch.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import IncompatibleError


def make_loss(task: str, name: str | None) -> nn.Module:
    """The loss the task calls for, or the one named in the spec."""
    name = name or ("cross_entropy" if task == "classification" else "mse")
    if name == "cross_entropy" and task != "classification":
        raise IncompatibleError(f"loss 'cross_entropy' needs a classification task; this data is {task}",
                                "use loss='mse', 'mae' or 'huber'")
    if name != "cross_entropy" and task == "classification":
        raise IncompatibleError(f"loss '{name}' is for regression; this data is classification",
                                "use loss='cross_entropy' (the default)")
    return {"cross_entropy": nn.CrossEntropyLoss, "mse": nn.MSELoss,
            "mae": nn.L1Loss, "huber": nn.HuberLoss}[name]()


class MetricAccumulator:
    """Running sums of one pass over a split, kept on the device until ``compute``."""

    def __init__(self, task: str, n_outputs: int, device: torch.device):
        self.task = task
        self.n = 0
        self.loss_sum = torch.zeros((), device=device)
        if task == "classification":
            self.confusion = torch.zeros(n_outputs, n_outputs, dtype=torch.long, device=device)
        else:
            self.preds: list[torch.Tensor] = []
            self.targets: list[torch.Tensor] = []

    @torch.no_grad()
    def add(self, out: torch.Tensor, y: torch.Tensor, loss: torch.Tensor) -> None:
        b = y.shape[0]
        self.n += b
        self.loss_sum += loss.detach().float() * b
        if self.task == "classification":
            k = self.confusion.shape[0]
            # out: [B, K] logits, y: [B] -> one bincount builds the [K, K] confusion matrix
            idx = y * k + out.argmax(dim=1)
            self.confusion += torch.bincount(idx, minlength=k * k).view(k, k)
        else:
            self.preds.append(out.detach().float())
            self.targets.append(y.detach().float())

    def compute(self, prefix: str, inverse=None) -> dict:
        """Plain floats; ``inverse`` maps scaled regression targets back to data units."""
        metrics = {f"{prefix}loss": float(self.loss_sum) / max(self.n, 1)}
        if self.task == "classification":
            metrics.update(classification_metrics(self.confusion.cpu(), prefix))
        elif self.n:
            pred, true = torch.cat(self.preds), torch.cat(self.targets)
            if inverse is not None:
                pred, true = inverse(pred.cpu()), inverse(true.cpu())
            metrics.update(regression_metrics(pred, true, prefix))
        return metrics


def classification_metrics(confusion: torch.Tensor, prefix: str = "") -> dict:
    cm = confusion.double()
    tp = cm.diag()
    support, predicted = cm.sum(1), cm.sum(0)
    precision = tp / predicted.clamp(min=1)
    recall = tp / support.clamp(min=1)
    f1 = 2 * precision * recall / (precision + recall).clamp(min=1e-12)
    present = support > 0  # macro average over classes that occur in this split
    return {
        f"{prefix}accuracy": float(tp.sum() / cm.sum().clamp(min=1)),
        f"{prefix}f1": float(f1[present].mean()) if present.any() else 0.0,
    }


def regression_metrics(pred: torch.Tensor, true: torch.Tensor, prefix: str = "") -> dict:
    err = pred - true
    ss_res = float((err**2).sum())
    ss_tot = float(((true - true.mean(0)) ** 2).sum())
    return {
        f"{prefix}mae": float(err.abs().mean()),
        f"{prefix}rmse": math.sqrt(float((err**2).mean())),
        f"{prefix}r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else 0.0,
    }
