"""Static checks of the tutorial notebooks (no kernel): every notebook in notebooks/ is collected
by the nbval run, was executed top to bottom with its outputs committed, and follows the
conventions that keep nbval stable (a private NBAIMAAS_HOME, checked cells, no errors)."""

from __future__ import annotations

import os
import re
import subprocess

import nbformat
import pytest

from ._nb import NOTEBOOKS, ROOT, SANITIZE, nbval_command, notebook_env, tutorial_paths

PATHS = tutorial_paths()
IDS = [p.name for p in PATHS]
CHECK = "# NBVAL_CHECK_OUTPUT"


def code_cells(path):
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def test_the_first_four_tutorials_exist():
    names = {p.name for p in PATHS}
    for name in ("01-quickstart.ipynb", "02-images-cnn.ipynb", "03-sequences-rnn.ipynb", "04-text-nlp.ipynb"):
        assert name in names


def test_every_notebook_is_collected_by_the_nbval_run():
    proc = subprocess.run(nbval_command() + ["--collect-only"], cwd=ROOT, env=notebook_env(os.environ),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    collected = {line.split("::")[0] for line in proc.stdout.splitlines() if ".ipynb::" in line}
    expected = {str(p.relative_to(ROOT)) for p in PATHS}
    assert expected - collected == set(), f"not covered by nbval: {sorted(expected - collected)}"


def test_sanitize_config_parses_and_its_regexes_compile():
    import configparser

    config = configparser.ConfigParser(interpolation=None)
    config.read(SANITIZE)
    assert config.sections()
    for section in config.sections():
        re.compile(config[section]["regex"])
        assert "replace" in config[section]


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_notebook_was_executed_top_to_bottom(path):
    cells = code_cells(path)
    assert cells, "a tutorial without code"
    counts = [c.execution_count for c in cells]
    unexecuted = [i for i, n in enumerate(counts) if n is None]
    assert not unexecuted, (f"code cells {unexecuted} have no stored outputs; run "
                            f"`bash .ci/refresh-notebooks {path.relative_to(ROOT)}`")
    assert counts == list(range(1, len(cells) + 1)), f"not one top-to-bottom run: {counts}"
    errors = [i for i, c in enumerate(cells) for o in c.outputs if o.output_type == "error"]
    assert not errors, f"cells {errors} stored an error"


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_notebook_conventions(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    assert any(c.cell_type == "markdown" for c in nb.cells), "tutorials explain themselves in markdown"
    first = code_cells(path)[0].source
    assert "NBAIMAAS_HOME" in first and "tempfile" in first, "the first cell must use a fresh NBAIMAAS_HOME"
    home = first.index("NBAIMAAS_HOME")
    assert all(home < m.start() for m in re.finditer(r"import nbaimaas|%load_ext nbaimaas", first)), \
        "NBAIMAAS_HOME must be set before nbaimaas is imported"
    assert any(c.source.startswith(CHECK) for c in code_cells(path)), "no cell is checked by nbval"


def test_quickstart_is_the_seven_steps_with_magics():
    sources = "\n".join(c.source for c in code_cells(NOTEBOOKS / "01-quickstart.ipynb"))
    for magic in ("%aimaas_data", "%aimaas_summary", "%aimaas_train", "%aimaas_eval", "%aimaas_models",
                  "%aimaas_predict", "--init", "--early-stop"):
        assert magic in sources
    tagged = [c for c in code_cells(NOTEBOOKS / "01-quickstart.ipynb")
              if "nbaimaas-final-metrics" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0].outputs, "the headless run prints the tagged cell's metrics"
