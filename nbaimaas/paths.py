"""Where the store lives, decided in one place (plain Python: the client and api use it too)."""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "NBAIMAAS_HOME"


def store_path(path: str | os.PathLike | None = None) -> Path:
    """The store root: ``path``, else ``$NBAIMAAS_HOME``, else ``~/.nbaimaas`` (not created)."""
    if path is None:
        path = os.environ.get(HOME_ENV) or Path.home() / ".nbaimaas"
    return Path(path).expanduser()
