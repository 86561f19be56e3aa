"""The model catalog: architectures by name, built to fit the prepared data.

    create_model(ModelSpec("lenet"), info) -> nn.Module     # sizes from info
    list_architectures(task="classification", modality="text")
    summary(model, info)                                     # layers, shapes, parameter counts
    wrap_module(my_module, info)                             # check your own nn.Module fits

Models take the tensors of engine.types and return classification logits [N, n_classes],
regression values [N, n_outputs] or forecasts [N, horizon].
"""

from __future__ import annotations

# Importing the architecture modules registers them into ARCHITECTURES.
from . import cnn, layers, mlp, rnn, text  # noqa: F401
from .catalog import ARCHITECTURES, ArchEntry, Catalog, create_model, list_architectures
from .summary import summary, wrap_module

__all__ = ["ARCHITECTURES", "ArchEntry", "Catalog", "create_model", "list_architectures",
           "summary", "wrap_module"]
