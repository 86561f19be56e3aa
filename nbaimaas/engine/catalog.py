"""The one catalog mechanism behind datasets and architectures (timm-style explicit registries).

A catalog holds *code* by name; trained models live in the registry (engine/registry.py).
Subclasses add a ``register`` decorator that builds their entry and calls ``add``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from ..errors import unknown_name

E = TypeVar("E")


class NamedCatalog(Generic[E]):
    """Name -> entry; ``get`` answers unknown names with "did you mean" and the known names."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, E] = {}

    def add(self, name: str, entry: E) -> None:
        if name in self._entries:  # a programming error, not a user's
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry

    def names(self) -> list[str]:
        return sorted(self._entries)

    def get(self, name: str) -> E:
        try:
            return self._entries[name]
        except KeyError:
            raise unknown_name(self.kind, name, self.names()) from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[E]:
        return iter([self._entries[n] for n in self.names()])

    def __len__(self) -> int:
        return len(self._entries)
