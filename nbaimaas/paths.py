"""Where the store lives, and where this package lives for the processes it starts, decided in one
place (plain Python: the client and api use it too)."""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "NBAIMAAS_HOME"


def store_path(path: str | os.PathLike | None = None) -> Path:
    """The store root: ``path``, else ``$NBAIMAAS_HOME``, else ``~/.nbaimaas`` (not created)."""
    if path is None:
        path = os.environ.get(HOME_ENV) or Path.home() / ".nbaimaas"
    return Path(path).expanduser()


def child_env() -> dict:
    """This environment, with this very package first on PYTHONPATH: the processes nbaimaas starts
    (service, job workers, torchrun workers) import it from wherever it was imported here."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env

