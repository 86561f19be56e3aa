"""The tutorials are tests: every notebook in notebooks/ runs top to bottom under nbval, and the
cells marked ``# NBVAL_CHECK_OUTPUT`` must reproduce their committed outputs (after the sanitizers
in notebooks/nbval_sanitize.cfg). Refresh stored outputs with ``bash .ci/refresh-notebooks``.
"""

from __future__ import annotations

import os
import subprocess

import nbformat
import pytest

from ._nb import ROOT, SANITIZE, nbval_command, notebook_env


@pytest.mark.slow
def test_tutorial_notebooks_pass_nbval():
    proc = subprocess.run(nbval_command(), cwd=ROOT, env=notebook_env(os.environ), capture_output=True,
                          text=True, timeout=1500)
    assert proc.returncode == 0, (
        "nbval failed on the tutorials (if a behaviour changed on purpose, run "
        "`bash .ci/refresh-notebooks` and review the diff):\n" + proc.stdout[-6000:] + proc.stderr[-2000:])


def test_sanitizers_hide_volatile_text_but_not_changed_results(tmp_path):
    """A checked cell that differs only in a run id, timestamp, temp path or the third decimal
    passes; one whose result changed fails. Proves the comparison is live with this config."""
    stable = nbformat.v4.new_code_cell(
        "# NBVAL_CHECK_OUTPUT\n"
        "import tempfile, datetime\n"
        "print('run-20260101-120000-abc123', datetime.datetime.now().isoformat(timespec='seconds'))\n"
        "print(tempfile.mkdtemp(prefix='nbaimaas-'), 'accuracy 0.9481')")
    stable.outputs = [nbformat.v4.new_output(
        "stream", name="stdout",
        text="run-20251231-235959-ffffff 2025-12-31T23:59:59\n/tmp/nbaimaas-abcd1234 accuracy 0.9412\n")]
    stable.execution_count = 1
    changed = nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nprint('accuracy', 0.91)")
    changed.outputs = [nbformat.v4.new_output("stream", name="stdout", text="accuracy 0.95\n")]
    changed.execution_count = 2
    nb = nbformat.v4.new_notebook(cells=[stable, changed])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "probe.ipynb"
    nbformat.write(nb, path)
    cmd = nbval_command(str(path))
    cmd[cmd.index("--nbval-sanitize-with") + 1] = str(SANITIZE)
    proc = subprocess.run(cmd + ["--rootdir", str(tmp_path)], cwd=tmp_path, env=notebook_env(os.environ),
                          capture_output=True, text=True, timeout=300)
    summary = proc.stdout.strip().splitlines()[-1]
    assert "1 failed" in summary and "1 passed" in summary, proc.stdout[-4000:]
