"""Start-up stays light: ``import nbaimaas`` and ``%load_ext nbaimaas`` do not import torch.

Each check runs in a fresh interpreter (this test session has torch loaded already). The time
is printed for the record, never asserted: tests do not assert timings (bench/import_time.py
measures them).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

IMPORT = """
import json, sys, time
t = time.perf_counter()
import nbaimaas
print(json.dumps({"seconds": time.perf_counter() - t, "torch": "torch" in sys.modules}))
"""

LOAD_EXT = """
import json, sys, time
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
t = time.perf_counter()
shell.run_line_magic("load_ext", "nbaimaas")
print(json.dumps({"seconds": time.perf_counter() - t, "torch": "torch" in sys.modules}))
"""


def _fresh(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         check=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_nbaimaas_does_not_import_torch():
    got = _fresh(IMPORT)
    print(f"import nbaimaas: {got['seconds']:.3f} s")
    assert got["torch"] is False


def test_load_ext_does_not_import_torch():
    pytest.importorskip("IPython")
    got = _fresh(LOAD_EXT)
    print(f"%load_ext nbaimaas: {got['seconds']:.3f} s")
    assert got["torch"] is False
