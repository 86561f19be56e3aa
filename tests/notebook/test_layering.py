"""The notebook layer never imports torch or the engine: checked in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = r"""
import json, sys, time
t0 = time.perf_counter()
import nbaimaas
import nbaimaas.notebook.magics
import nbaimaas.notebook.panels
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
shell.run_line_magic("load_ext", "nbaimaas")
assert "aimaas_train" in shell.magics_manager.magics["line"]
assert "aimaas_train" in shell.magics_manager.magics["cell"]
panel_class = nbaimaas.TrainPanel
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "modules": sorted(sys.modules)}))
"""


def test_magics_and_panels_import_no_torch_and_no_engine():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    modules = set(report["modules"])
    print(f"import nbaimaas + magics + panels + %load_ext: {report['seconds']:.2f} s")
    assert "torch" not in modules
    assert not {m for m in modules if m.startswith("nbaimaas.engine")}
    assert not {m for m in modules if m.startswith("nbaimaas.backends.local")}


def test_loading_the_extension_alone_stays_light():
    code = ("import json, sys; from IPython.core.interactiveshell import InteractiveShell; "
            "InteractiveShell.instance().run_line_magic('load_ext', 'nbaimaas'); "
            "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    top = {m.split(".")[0] for m in json.loads(out.stdout.strip().splitlines()[-1])}
    # matplotlib and ipywidgets load on the first picture or panel, not with %load_ext.
    assert not {"torch", "matplotlib", "ipywidgets"} & top
