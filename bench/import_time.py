"""Start-up: ``import nbaimaas`` and ``%load_ext nbaimaas`` in a fresh interpreter, and proof
that neither imports torch (it loads on first use).

Each figure is the median over several fresh interpreters; ``python -c pass`` is shown for
scale. ``%load_ext`` is timed inside an IPython shell that is already running (as in a notebook),
so IPython's own start-up is not counted.

    python -m bench.import_time [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import have, table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

IMPORT = """
import json, sys, time
t = time.perf_counter()
import nbaimaas
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "torch": "torch" in sys.modules}))
"""

LOAD_EXT = """
import json, sys, time
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
t = time.perf_counter()
shell.run_line_magic("load_ext", "nbaimaas")
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "torch": "torch" in sys.modules}))
"""

BASELINE = """
import json
print(json.dumps({"seconds": 0.0, "torch": False}))
"""


def fresh(code: str) -> tuple[float, float, bool]:
    """(wall seconds of the interpreter, seconds of the measured part, torch imported?)."""
    import time

    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=ROOT, check=True)
    wall = time.perf_counter() - t
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return wall, data["seconds"], data["torch"]


def measure(code: str, runs: int) -> dict:
    fresh(code)                                         # warm the file cache
    results = [fresh(code) for _ in range(runs)]
    return {"seconds": statistics.median(r[1] for r in results),
            "process_seconds": statistics.median(r[0] for r in results),
            "torch_imported": any(r[2] for r in results), "runs": runs}


def run(runs: int = 7) -> dict:
    rows = {"python -c pass": measure(BASELINE, runs), "import nbaimaas": measure(IMPORT, runs)}
    notes = []
    if have("IPython"):
        rows["%load_ext nbaimaas"] = measure(LOAD_EXT, runs)
    else:
        notes.append("IPython not installed: %load_ext not measured")
    text = table(["what", "measured part (s)", "whole interpreter (s)", "torch imported"],
                 [[k, f"{v['seconds']:.3f}", f"{v['process_seconds']:.3f}", "yes" if v["torch_imported"] else "no"]
                  for k, v in rows.items()])
    return {"rows": rows, "notes": notes, "table": text + "".join(f"\n- {n}" for n in notes)}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--json")
    a = p.parse_args(argv)
    out = run(a.runs)
    print(f"start-up, median of {a.runs} fresh interpreters")
    print(out["table"])
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2))
    for name in ("import nbaimaas", "%load_ext nbaimaas"):
        assert not out["rows"].get(name, {}).get("torch_imported"), f"{name} imported torch"
    return out


if __name__ == "__main__":
    main()
