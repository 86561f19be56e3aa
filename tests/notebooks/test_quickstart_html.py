"""The headless run's page: one self-contained HTML file whose plots and final widget state show
offline (the widget renderer inlined, no script or stylesheet from a CDN)."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess

import nbformat
import pytest

from nbaimaas import _export

WIDGET_CELL = """
import ipywidgets as w
bar = w.IntProgress(value=7, max=10)
bar.add_class("nbaimaas-probe")
display(bar)
"""
PLOT_CELL = """
import io
from matplotlib.figure import Figure
fig = Figure(figsize=(2, 2)); fig.add_subplot().plot([0, 1], [1, 0])
buf = io.BytesIO(); fig.savefig(buf, format="png")
display({"image/png": buf.getvalue(), "text/plain": "<plot>"}, raw=True)
"""


def tiny_notebook():
    cells = [nbformat.v4.new_markdown_cell("# probe"), nbformat.v4.new_code_cell(WIDGET_CELL),
             nbformat.v4.new_code_cell(PLOT_CELL),
             nbformat.v4.new_code_cell("print('final: accuracy=0.99')")]
    cells[-1].metadata["tags"] = [_export.FINAL_METRICS_TAG]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """(executed notebook, its HTML): one kernel start for the whole module."""
    tmp = tmp_path_factory.mktemp("probe")
    nb = _export.execute_notebook(tiny_notebook(), cwd=tmp, timeout=120)
    html = _export.export_html(nb, tmp / "probe.html")
    return nb, html, tmp / "probe.html"


def test_the_widget_renderer_is_vendored_small_and_licensed():
    js = _export.WIDGET_JS
    assert js.exists() and js.stat().st_size < 3_000_000
    readme = (js.parent / "README.md").read_text()
    assert "BSD-3-Clause" in readme and "MIT" in readme
    assert hashlib.sha256(js.read_bytes()).hexdigest() in readme, "README.md must record the file's sha256"
    assert (js.parent / "html-manager-embed.js.LICENSE.txt").exists()
    assert (js.parent / "LICENSE-jupyter-widgets.txt").exists()


def test_execution_stores_the_final_widget_state(page):
    nb, _, _ = page
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    bars = [m for m in state.values() if m["model_name"] == "IntProgressModel"]
    assert bars and bars[0]["state"]["value"] == 7


def test_the_page_is_self_contained(page):
    _, html, path = page
    assert path.read_text() == html
    assert 'id="nbaimaas-widget-renderer"' in html
    assert _export.widget_js()[:2000] in html, "the manager script is inlined"
    assert '<script type="application/vnd.jupyter.widget-state+json">' in html
    assert '"IntProgressModel"' in html and "nbaimaas-probe" in html
    assert '<script type="application/vnd.jupyter.widget-view+json">' in html
    assert "data:image/png;base64," in html
    tags = re.findall(r"<(?:script|link|img|iframe)\b[^>]*>", html, flags=re.I)
    remote = [t for t in tags if re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", t, flags=re.I)]
    assert not remote, f"remote resources: {remote}"
    # The renderer itself names CDNs (its loader for third-party widget libraries, never used
    # for the built-in controls); the rest of the page must not.
    rest = html.replace(_export.widget_js(), "")
    assert not re.search(r"cdnjs|unpkg\.com|jsdelivr", rest)


def test_final_metrics_come_from_the_tagged_cell(page):
    nb, _, _ = page
    assert _export.final_metrics(nb) == "final: accuracy=0.99"


def test_quickstart_runs_a_copy_and_leaves_the_source_untouched(tmp_path):
    src = tmp_path / "nb.ipynb"
    nb = tiny_notebook()
    nb.cells = [nb.cells[0], nb.cells[-1]]          # no widget: the quickest kernel round trip
    nbformat.write(nb, src)
    before = src.read_bytes()
    out, metrics = _export.quickstart(src, tmp_path / "out" / "q.html", timeout=120)
    assert out.exists() and metrics == "final: accuracy=0.99"
    assert src.read_bytes() == before


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.e2e
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine")
def test_widgets_render_offline_in_a_browser(page, tmp_path):
    """Headless Chromium, no network: the inlined renderer turns the saved state into widget DOM."""
    _, _, path = page
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-quic",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--proxy-server=127.0.0.1:9",   # nothing remote
         "--virtual-time-budget=15000", "--dump-dom", path.as_uri()],
        capture_output=True, text=True, timeout=180)
    dom = proc.stdout
    assert "widget-hprogress" in dom and "nbaimaas-probe" in dom, proc.stderr[-3000:]
