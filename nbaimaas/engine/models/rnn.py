"""Recurrent networks (LSTM, GRU) for series windows [N, window, 1] and token ids [N, L].

Text is right-padded with 0 (engine.types). Rather than packing, the net runs over the padded
batch and reads the output at each row's last real token: for a unidirectional RNN that is
exactly the packed result (later pad steps cannot change earlier outputs), it needs no CPU copy
of the lengths, and it keeps static shapes for CUDA graphs.
"""

from __future__ import annotations

import torch
from torch import nn

from ..types import DataInfo
from .catalog import ARCHITECTURES
from .common import fraction, positive, relative_to_last, text_lengths

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}


class RecurrentNet(nn.Module):
    def __init__(self, info: DataInfo, cell: str, hidden: int, layers: int, dropout: float,
                 embedding_dim: int):
        super().__init__()
        self.text = info.modality == "text"
        if self.text:
            self.embed = nn.Embedding(info.vocab_size, embedding_dim, padding_idx=0)
            n_in = embedding_dim
        else:
            n_in = info.input_shape[-1]                     # series: 1 value per step
        # torch applies RNN dropout only between stacked layers; it warns when layers == 1
        self.rnn = CELLS[cell](n_in, hidden, num_layers=layers, batch_first=True,
                               dropout=dropout if layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, info.n_outputs)

    def forward(self, x):
        if not self.text:
            return relative_to_last(self._series, x)        # [N, window, 1] -> [N, horizon]
        last = text_lengths(x) - 1                          # [N] index of the last real token
        out, _ = self.rnn(self.embed(x))                    # [N, L] -> [N, L, E] -> [N, L, hidden]
        h = out[torch.arange(len(out), device=out.device), last]   # [N, hidden]
        return self.head(self.dropout(h))                   # [N, n_outputs]

    def _series(self, x):
        out, _ = self.rnn(x)                                # [N, window, hidden]
        return self.head(self.dropout(out[:, -1]))          # [N, horizon] after the whole window


def _register(cell: str, description: str) -> None:
    @ARCHITECTURES.register(
        cell, family="rnn", modalities=("series", "text"),
        tasks=("forecast", "classification", "regression"), description=description,
    )
    def build(info: DataInfo, *, hidden: int = 64, layers: int = 1, dropout: float = 0.0,
              embedding_dim: int = 64) -> nn.Module:
        return RecurrentNet(info, cell, positive("hidden", hidden), positive("layers", layers),
                            fraction("dropout", dropout), positive("embedding_dim", embedding_dim))


_register("lstm", "LSTM over the sequence; the last step's state feeds a linear head")
_register("gru", "GRU over the sequence; the last step's state feeds a linear head")
