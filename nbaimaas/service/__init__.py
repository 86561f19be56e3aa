"""The model service: a FastAPI app over the engine, run by ``nbaimaas serve``.

    from nbaimaas.service import create_app, serve_in_background
    url, process = serve_in_background("/path/to/store")      # a child process on a free port

Importing this package imports neither FastAPI nor torch; ``wire`` (the format shared with
ServiceClient) needs only numpy.
"""

from __future__ import annotations

__all__ = ["create_app", "serve_in_background"]


def __getattr__(name: str):
    if name == "create_app":
        from .app import create_app

        return create_app
    if name == "serve_in_background":
        from .launch import serve_in_background

        return serve_in_background
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
