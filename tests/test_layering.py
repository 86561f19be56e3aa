"""The layer arrows of docs/architecture.md, checked in fresh interpreters.

Importing a module in a new process and looking at ``sys.modules`` catches an import that sneaks
in anywhere in the chain, which a grep would miss.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import nbaimaas

HEAVY = ("torch", "IPython", "ipywidgets", "matplotlib", "fastapi", "httpx", "uvicorn", "pandas")


def imported_after(module: str) -> set[str]:
    code = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return {m.split(".")[0] for m in json.loads(out.stdout.strip().splitlines()[-1])}


@pytest.mark.parametrize("module", [
    "nbaimaas", "nbaimaas.specs", "nbaimaas.events", "nbaimaas.results", "nbaimaas.errors",
    "nbaimaas.api", "nbaimaas.session",
])
def test_bottom_layer_and_api_import_nothing_heavy(module):
    assert not set(HEAVY) & imported_after(module)


@pytest.mark.parametrize("module", ["nbaimaas.engine.loop", "nbaimaas.engine.predict",
                                    "nbaimaas.engine.data", "nbaimaas.engine.models",
                                    "nbaimaas.backends.local"])
def test_engine_never_imports_the_notebook_or_web_stack(module):
    banned = {"IPython", "ipywidgets", "matplotlib", "fastapi", "httpx", "uvicorn"}
    assert not banned & imported_after(module)


def test_public_api_is_exactly_all():
    public = {n for n in dir(nbaimaas) if not n.startswith("_")}
    modules = {"api", "errors", "results", "session", "specs", "events", "names", "backends", "engine",
               "notebook", "service", "cli", "paths"}
    assert set(nbaimaas.__all__) <= public
    extra = public - set(nbaimaas.__all__) - modules - {"annotations"}
    assert not extra, f"public names missing from __all__: {sorted(extra)}"
