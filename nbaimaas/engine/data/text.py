"""Text: lowercase regex words -> ids from a training-split vocabulary -> int64 [N, max_len].

Index 0 pads, 1 stands for any word not in the vocabulary (including every word seen only in
val/test, so the vocabulary cannot leak). The vocabulary is kept by frequency, ties by token, so
the same data always gives the same ids.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import torch

from ...errors import DataError
from .base import BasePreprocessor

PAD, UNKNOWN = 0, 1
TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def tokenize(text: str) -> list[str]:
    return TOKEN.findall(text.lower())


class TextPreprocessor(BasePreprocessor):
    kind = "text"

    def __init__(self, vocab: list[str], max_len: int):
        self.vocab = list(vocab)                   # id i + 2 -> token
        self.max_len = int(max_len)
        self._ids = {tok: i + 2 for i, tok in enumerate(self.vocab)}

    @classmethod
    def fit(cls, train_texts: list[str], max_vocab: int, max_len: int) -> "TextPreprocessor":
        counts = Counter(tok for t in train_texts for tok in tokenize(t))
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return cls([tok for tok, _ in ranked[: max(max_vocab - 2, 0)]], max_len)

    @property
    def vocab_size(self) -> int:
        """Including pad (0) and unknown (1)."""
        return len(self.vocab) + 2

    def transform(self, raw: Any) -> torch.Tensor:
        texts = [raw] if isinstance(raw, str) else list(raw) if isinstance(raw, (list, tuple)) else None
        if texts is None:
            raise DataError(f"text input must be a string or a list of strings; got {type(raw).__name__}")
        out = torch.full((len(texts), self.max_len), PAD, dtype=torch.int64)    # [N, max_len]
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise DataError(f"text input must be strings; item {i} is {type(text).__name__}")
            ids = [self._ids.get(tok, UNKNOWN) for tok in tokenize(text)][: self.max_len]
            if ids:
                out[i, : len(ids)] = torch.tensor(ids, dtype=torch.int64)
        return out

    def state(self) -> tuple[dict, dict[str, torch.Tensor]]:
        return {"kind": self.kind, "vocab": list(self.vocab), "max_len": self.max_len,
                "token_pattern": TOKEN.pattern}, {}

    @classmethod
    def from_state(cls, meta: dict, tensors: dict[str, torch.Tensor]) -> "TextPreprocessor":
        return cls(meta["vocab"], meta["max_len"])
