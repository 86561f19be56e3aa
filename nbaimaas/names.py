"""Model names and references: ``digits-cnn``, ``digits-cnn:3``, ``digits-cnn@best``.

Names are strict (they become folder names in the store and path segments in URLs), so a
reference can never climb out of the store: no slashes, dots-only names or percent signs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import UserError

__all__ = ["ModelRef", "check_model_name", "parse_ref", "NAME_PATTERN"]

NAME_PATTERN = r"[a-z0-9][a-z0-9_-]{0,62}"
_NAME = re.compile(NAME_PATTERN)
_REF = re.compile(rf"(?P<name>{NAME_PATTERN})(?::(?P<version>[0-9]{{1,9}})|@(?P<alias>{NAME_PATTERN}))?")


def check_model_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise UserError(
            f"invalid model name {name!r}",
            "use 1-63 lowercase letters, digits, '-' or '_', starting with a letter or digit",
        )
    return name


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name


def parse_ref(ref: str | ModelRef) -> ModelRef:
    """``'a'`` -> latest version, ``'a:3'`` -> version 3, ``'a@best'`` -> the alias."""
    if isinstance(ref, ModelRef):
        return ref
    m = _REF.fullmatch(ref) if isinstance(ref, str) else None
    if m is None:
        raise UserError(
            f"invalid model reference {ref!r}",
            "write NAME, NAME:VERSION or NAME@ALIAS, e.g. digits-cnn:2 or digits-cnn@best",
        )
    version = m.group("version")
    return ModelRef(m.group("name"), int(version) if version else None, m.group("alias"))
