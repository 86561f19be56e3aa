"""The session: which Backend the notebook is talking to right now.

There is one current session per process (like matplotlib's current figure), switched by
``ai.connect(...)`` / ``%aimaas_connect``. Backends are created lazily so importing nbaimaas
never imports torch.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from .errors import UserError


class Session:
    def __init__(self, backend: Any = None):
        self._backend = backend
        self._lock = threading.Lock()

    @property
    def backend(self):
        with self._lock:
            if self._backend is None:
                from .backends.local import LocalBackend

                self._backend = LocalBackend()
            return self._backend

    def reset(self) -> None:
        """Forget the backend; the next call makes a fresh LocalBackend (from NBAIMAAS_HOME)."""
        with self._lock:
            self._backend = None

    def connect(self, target: str = "local", *, token: str | None = None, home: str | Path | None = None,
                transport: Any = None):
        """``"local"`` for the in-process engine, or a service URL such as ``http://127.0.0.1:8765``."""
        if target == "local":
            from .backends.local import LocalBackend

            backend = LocalBackend(home)
        elif isinstance(target, str) and target.startswith(("http://", "https://")):
            try:
                from .backends.client import ServiceClient
            except ImportError as e:
                raise UserError(f"connecting to a service needs httpx ({e.name} is missing)",
                                "pip install nbaimaas[service]") from None
            backend = ServiceClient(target, token=token, home=home, transport=transport)
        else:
            raise UserError(f"cannot connect to {target!r}", "use 'local' or a URL like http://127.0.0.1:8765")
        with self._lock:
            self._backend = backend
        return backend


_current = Session()


def current() -> Session:
    return _current
