"""Text classifiers over right-padded token ids [N, L] (0 = pad, 1 = unknown)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ...errors import SpecError
from ..types import DataInfo
from .catalog import ARCHITECTURES
from .common import fraction, masked_mean, positive, text_lengths

TEXT = dict(family="nlp", modalities=("text",), tasks=("classification",))


class BagOfEmbeddings(nn.Module):
    def __init__(self, info: DataInfo, dim: int, hidden: int, dropout: float):
        super().__init__()
        # padding_idx=0 keeps pads out of the mean; an all-pad row averages to zeros
        self.bag = nn.EmbeddingBag(info.vocab_size, dim, mode="mean", padding_idx=0)
        head: list[nn.Module] = [nn.Dropout(dropout)]
        if hidden:
            head += [nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout)]
        head.append(nn.Linear(hidden or dim, info.n_outputs))
        self.head = nn.Sequential(*head)

    def forward(self, x):
        # x: [N, L] -> mean embedding of the real tokens [N, dim] -> logits [N, n_classes]
        return self.head(self.bag(x))


@ARCHITECTURES.register("embedding_bag", **TEXT,
                        description="mean of word embeddings (fastText-style), then a linear head")
def build_embedding_bag(info: DataInfo, *, embedding_dim: int = 64, hidden: int = 0,
                        dropout: float = 0.0) -> nn.Module:
    if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 0:
        raise SpecError(f"option 'hidden' must be 0 (no hidden layer) or a width, got {hidden!r}")
    return BagOfEmbeddings(info, positive("embedding_dim", embedding_dim), hidden,
                           fraction("dropout", dropout))


class BiLSTM(nn.Module):
    """Packed so the backward direction starts at each row's last real token, not at the pads."""

    def __init__(self, info: DataInfo, dim: int, hidden: int, layers: int, dropout: float):
        super().__init__()
        self.embed = nn.Embedding(info.vocab_size, dim, padding_idx=0)
        self.rnn = nn.LSTM(dim, hidden, num_layers=layers, batch_first=True, bidirectional=True,
                           dropout=dropout if layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(4 * hidden, info.n_outputs)   # mean and max of 2 directions

    def forward(self, x):
        n, length = x.shape                                  # [N, L]
        lengths = text_lengths(x)                            # [N]
        packed = pack_padded_sequence(self.embed(x), lengths.cpu(), batch_first=True,
                                      enforce_sorted=False)
        out, _ = self.rnn(packed)
        h, _ = pad_packed_sequence(out, batch_first=True, total_length=length)  # [N, L, 2H]
        keep = torch.arange(length, device=x.device)[None, :] < lengths[:, None]  # [N, L]
        mean = masked_mean(h, keep)                                               # [N, 2H]
        top = h.masked_fill(~keep.unsqueeze(-1), float("-inf")).amax(dim=1)      # [N, 2H]
        return self.head(self.dropout(torch.cat([mean, top], dim=1)))            # [N, classes]


@ARCHITECTURES.register("bilstm", **TEXT,
                        description="bidirectional LSTM with mean+max pooling over real tokens")
def build_bilstm(info: DataInfo, *, embedding_dim: int = 64, hidden: int = 64, layers: int = 1,
                 dropout: float = 0.0) -> nn.Module:
    return BiLSTM(info, positive("embedding_dim", embedding_dim), positive("hidden", hidden),
                  positive("layers", layers), fraction("dropout", dropout))


class TextTransformer(nn.Module):
    def __init__(self, info: DataInfo, d_model: int, nhead: int, layers: int, ff: int,
                 dropout: float):
        super().__init__()
        self.embed = nn.Embedding(info.vocab_size, d_model, padding_idx=0)
        self.position = nn.Embedding(info.input_shape[0], d_model)     # learned, max_len rows
        layer = nn.TransformerEncoderLayer(d_model, nhead, ff, dropout, batch_first=True)
        # nested tensors would change output shapes per batch; keep plain dense tensors
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, info.n_outputs)

    def forward(self, x):
        length = x.shape[1]                                              # x: [N, L]
        pad = x == 0                                                     # [N, L]
        # a row of only pads would mask every key and give NaN: let it attend to step 0
        pad = pad & ~(pad.all(dim=1, keepdim=True) & (torch.arange(length, device=x.device) == 0))
        pos = torch.arange(length, device=x.device)
        h = self.embed(x) + self.position(pos)[None]                     # [N, L, d_model]
        h = self.encoder(h, src_key_padding_mask=pad)                    # [N, L, d_model]
        return self.head(masked_mean(h, ~pad))                           # [N, classes]


@ARCHITECTURES.register("transformer", **TEXT,
                        description="small Transformer encoder with learned positions, mean pooled")
def build_transformer(info: DataInfo, *, d_model: int = 64, nhead: int = 4, layers: int = 2,
                      dim_feedforward: int = 128, dropout: float = 0.1) -> nn.Module:
    if positive("d_model", d_model) % positive("nhead", nhead):
        raise SpecError(f"option 'd_model' ({d_model}) must be divisible by 'nhead' ({nhead})")
    return TextTransformer(info, d_model, nhead, positive("layers", layers),
                           positive("dim_feedforward", dim_feedforward),
                           fraction("dropout", dropout))
