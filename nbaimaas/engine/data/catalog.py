"""The dataset catalog: built-in datasets by name (an explicit, timm-style registry object).

The catalog holds *code* (loaders); trained models live in the model registry. Loaders register
with a decorator so adding a dataset is one function, and it is tested for free by the
catalog-wide tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..catalog import NamedCatalog
from .raw import RawData


@dataclass(frozen=True)
class Entry:
    """A registered dataset: its loader plus facts shown by ``list_datasets`` without loading."""

    name: str
    loader: Callable[[], RawData]
    modality: str
    task: str
    description: str = ""
    samples: int | None = None
    input_shape: list | None = None
    classes: list = field(default_factory=list)

    def load(self) -> RawData:
        return self.loader()


class Catalog(NamedCatalog[Entry]):
    """Dataset name -> Entry; ``get`` answers unknown names with "did you mean"."""

    def register(self, name: str, *, modality: str, task: str, description: str = "",
                 samples: int | None = None, input_shape: list | None = None,
                 classes: list | None = None) -> Callable:
        def decorate(loader: Callable[[], RawData]) -> Callable[[], RawData]:
            self.add(name, Entry(name, loader, modality, task, description, samples,
                                 input_shape, list(classes or [])))
            return loader
        return decorate


DATASETS = Catalog("dataset")
