"""Images: raw units -> /raw_max -> optional resize -> per-channel standardise (train stats)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import DataError
from .base import BasePreprocessor, as_array


class ImagePreprocessor(BasePreprocessor):
    """Turns raw images ([H,W], [N,H,W], [N,C,H,W], channels-last, PIL) into float32 [N,C,H,W].

    ``scale='none'`` (and 'minmax', since /raw_max already maps to 0..1) skips standardising.
    """

    kind = "image"

    def __init__(self, channels: int, raw_size: tuple[int, int], resize: tuple[int, int] | None,
                 raw_max: float, mean: torch.Tensor, std: torch.Tensor):
        self.channels = channels
        self.raw_size = tuple(raw_size)
        self.resize = tuple(resize) if resize else None
        self.raw_max = float(raw_max)
        self.mean = mean.to(torch.float32)        # [C]
        self.std = std.to(torch.float32)          # [C]

    @classmethod
    def fit(cls, train: np.ndarray, raw_max: float, scale: str, image_size: int | None,
            always_resize: bool = False) -> "ImagePreprocessor":
        """Fit on the training images, raw [N, C, H, W]."""
        n, c, h, w = train.shape
        resize = (image_size, image_size) if image_size else ((h, w) if always_resize else None)
        pre = cls(c, (h, w), resize, raw_max, torch.zeros(c), torch.ones(c))
        if scale == "standard" and n:
            x = pre._unit(torch.as_tensor(np.asarray(train), dtype=torch.float32))
            pre.mean = x.mean(dim=(0, 2, 3))                       # [C]
            pre.std = x.std(dim=(0, 2, 3), unbiased=False).clamp_min(1e-6)
        return pre

    def _unit(self, x: torch.Tensor) -> torch.Tensor:
        """[N, C, H, W] raw -> 0..1 at the model's size."""
        x = x / self.raw_max
        if self.resize and tuple(x.shape[-2:]) != self.resize and len(x):
            x = F.interpolate(x, size=self.resize, mode="bilinear", antialias=True,
                              align_corners=False)
        return x

    def transform(self, raw: Any) -> torch.Tensor:
        return self._scaled(self._batch(raw))

    def _scaled(self, a: np.ndarray) -> torch.Tensor:
        """Checked numpy [N, C, H, W] -> standardised float32 [N, C, H', W']."""
        x = torch.from_numpy(np.array(a, dtype=np.float32))      # a writable copy
        x = self._unit(x)                                          # [N, C, H', W']
        return (x - self.mean[:, None, None]) / self.std[:, None, None]

    def transform_many(self, raws: list) -> list:
        """Checks each input on its own, then scales all inputs of one size in one pass."""
        out: list = [None] * len(raws)
        by_size: dict[tuple, list[tuple[int, np.ndarray]]] = {}
        for i, raw in enumerate(raws):
            try:
                a = self._batch(raw)                               # [n_i, C, H, W]
                by_size.setdefault(a.shape[1:], []).append((i, a))
            except Exception as exc:  # noqa: BLE001 - this input's own error
                out[i] = exc
        for members in by_size.values():
            scaled = self._scaled(np.concatenate([a for _, a in members]))     # [sum n_i, C, H', W']
            parts = torch.split(scaled, [len(a) for _, a in members])
            for (i, _), part in zip(members, parts):
                out[i] = part
        return out

    def _batch(self, raw: Any) -> np.ndarray:
        """Any accepted raw form -> numpy [N, C, H, W], checking rank, channels and size."""
        if isinstance(raw, (list, tuple)) and raw and hasattr(raw[0], "convert"):
            mode = "L" if self.channels == 1 else "RGB"
            raw = np.stack([np.asarray(im.convert(mode)) for im in raw])
        a = as_array(raw, "images")
        a = self._channels_first(a)
        if self.resize is None and tuple(a.shape[-2:]) != self.raw_size:
            raise self._shape_error(raw, a)
        return a

    def _channels_first(self, a: np.ndarray) -> np.ndarray:
        c = self.channels
        if a.ndim == 2 and c == 1:
            return a[None, None]                                   # [H, W] -> [1, 1, H, W]
        if a.ndim == 3 and c == 1:
            return a[:, None]                                      # [N, H, W] -> [N, 1, H, W]
        if a.ndim == 3 and a.shape[0] == c:
            return a[None]                                         # [C, H, W]
        if a.ndim == 3 and a.shape[-1] == c:
            return a.transpose(2, 0, 1)[None]                      # [H, W, C]
        if a.ndim == 4 and a.shape[1] == c:
            return a
        if a.ndim == 4 and a.shape[-1] == c:
            return a.transpose(0, 3, 1, 2)                         # [N, H, W, C]
        raise self._shape_error(a, a)

    def _shape_error(self, raw: Any, a: np.ndarray) -> DataError:
        h, w = self.raw_size
        shape = (h, w) if self.channels == 1 else (self.channels, h, w)
        batch = ", ".join(map(str, shape))
        got = tuple(np.shape(raw)) if not isinstance(raw, (list, tuple)) else tuple(a.shape)
        return DataError(f"expected images of shape {shape} (or a batch [N, {batch}]); got {got}")

    def state(self) -> tuple[dict, dict[str, torch.Tensor]]:
        meta = {"kind": self.kind, "channels": self.channels, "raw_size": list(self.raw_size),
                "resize": list(self.resize) if self.resize else None, "raw_max": self.raw_max}
        return meta, {"mean": self.mean.clone(), "std": self.std.clone()}

    @classmethod
    def from_state(cls, meta: dict, tensors: dict[str, torch.Tensor]) -> "ImagePreprocessor":
        return cls(meta["channels"], meta["raw_size"], meta["resize"], meta["raw_max"],
                   tensors["mean"], tensors["std"])
