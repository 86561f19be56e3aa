"""Driving JupyterLab (and widget pages) from Playwright: open, run all, wait, run a cell, read.

Everything waits on a selector or a condition in the page; nothing sleeps a fixed time.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from playwright.sync_api import Locator, Page, expect

from .servers import NOTEBOOKS, Server

#: ipywidgets' placeholders when a widget view cannot be built (no manager, no model).
WIDGET_FAILURES = ("Loading widget...", "Error displaying widget", "model not found")

#: Records every image the given selector matches as it loads: its src, a hash of its pixels (an
#: ipywidgets Image gets a new blob: URL on every update, even for identical bytes, so the pixels
#: are what tells a changed plot) and the text of a status element at that moment. Load events do
#: not bubble: listen in the capture phase.
_WATCH_IMAGES_JS = """
([selector, statusSelector]) => {
  window.__e2eImages = [];
  const status = () => { const el = statusSelector && document.querySelector(statusSelector);
                         return el ? el.innerText : null; };
  window.__e2eSrcs = [];
  const hash = (s) => { let h = 0; for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) | 0; return h; };
  document.addEventListener('load', (ev) => {
    const img = ev.target;
    if (!(img instanceof HTMLImageElement) || !img.matches(selector)) return;
    try {
      const c = document.createElement('canvas');
      c.width = img.naturalWidth; c.height = img.naturalHeight;
      c.getContext('2d').drawImage(img, 0, 0);
      const d = c.toDataURL('image/png');
      window.__e2eImages.push({src: img.src, hash: hash(d) + ':' + d.length, width: img.naturalWidth,
                                status: status()});
    } catch (e) {
      window.__e2eImages.push({src: img.src, error: String(e)});
    }
  }, true);
  new MutationObserver((records) => {
    for (const r of records) {
      const nodes = r.type === 'attributes' ? [r.target] : Array.from(r.addedNodes);
      for (const n of nodes) {
        if (!(n instanceof Element)) continue;
        const imgs = n.matches(selector) ? [n] : Array.from(n.querySelectorAll(selector));
        for (const img of imgs) if (img.src) window.__e2eSrcs.push(img.src);
      }
    }
  }).observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ['src']});
}
"""


def training_cells(notebook: str) -> int:
    """How many cells of notebooks/``notebook`` train in the foreground with %aimaas_train (each
    shows one live view)."""
    import nbformat

    nb = nbformat.read(NOTEBOOKS / notebook, as_version=4)
    return sum(1 for c in nb.cells if c.cell_type == "code" and "%aimaas_train" in c.source
               and "--background" not in c.source)


def watch_images(page: Page, selector: str, status_selector: str | None = None) -> None:
    page.evaluate(_WATCH_IMAGES_JS, [selector, status_selector])


def watched_images(page: Page) -> tuple[list[dict], list[str]]:
    """(loaded images with pixel hashes, every src value seen) since ``watch_images``."""
    return page.evaluate("[window.__e2eImages || [], window.__e2eSrcs || []]")


def progress_percent(bar: Locator) -> float:
    """The width of an ipywidgets IntProgress bar, in percent of the track."""
    width = bar.locator(".progress-bar").evaluate("el => el.style.width || '0%'")
    return float(width.rstrip("%") or 0)


def wait_progress_complete(page: Page, selector: str, timeout: float = 120_000) -> None:
    page.wait_for_function(
        """(sel) => { const b = document.querySelector(sel + ' .progress-bar');
                      return b && parseFloat(b.style.width) >= 100; }""",
        arg=selector, timeout=timeout)


def assert_no_widget_failures(scope: Locator) -> None:
    text = scope.inner_text()
    for bad in WIDGET_FAILURES:
        assert bad not in text, f"a widget did not render ({bad!r} on the page)"


def assert_image_loaded(img: Locator) -> None:
    """An <img> that is shown and whose picture decoded (not a broken-image icon)."""
    expect(img).to_be_visible()
    ok = img.evaluate("el => el.complete && el.naturalWidth > 0 && el.naturalHeight > 0")
    assert ok, f"image did not load: {img.evaluate('el => el.src.slice(0, 80)')}"


def screenshot(page: Page, artifacts: Path, name: str, element: Locator | None = None) -> Path:
    """The page's final state (and one element of it, when given) as artefacts."""
    path = artifacts / f"{name}.png"
    page.screenshot(path=str(path))
    if element is not None:
        element.screenshot(path=str(artifacts / f"{name}-panel.png"))
    return path


class LabNotebook:
    """One notebook open in JupyterLab in ``page``."""

    def __init__(self, page: Page, server: Server, name: str):
        self.page, self.server, self.name = page, server, name
        self.notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook").first

    # -- opening and running ----------------------------------------------------------------------
    def open(self, workspace: str = "e2e") -> "LabNotebook":
        """Open the notebook in a fresh workspace and wait until its kernel is idle."""
        self.page.goto(self.server.url(f"/lab/workspaces/{workspace}/tree/{self.name}", reset=""))
        expect(self.notebook).to_be_visible(timeout=120_000)
        expect(self.notebook.locator(".jp-Cell").first).to_be_visible()
        self.wait_idle()
        return self

    def wait_idle(self, timeout: float = 120_000) -> None:
        """The status bar reads '... | Idle' (the kernel started and is not busy)."""
        expect(self.page.locator("#jp-main-statusbar")).to_contain_text(
            re.compile(r"\|\s*Idle"), timeout=timeout)

    def run_all(self) -> None:
        """Run > Run All Cells, through the menu bar as a user does."""
        self.page.locator(".lm-MenuBar-item", has_text=re.compile(r"^\s*Run\s*$")).click()
        menu = self.page.locator(".lm-Menu")
        menu.locator('.lm-Menu-item[data-command="runmenu:run-all"], '
                     '.lm-Menu-item[data-command="notebook:run-all-cells"]').first.click()

    def wait_all_executed(self, timeout: float = 300_000) -> None:
        """Every code cell shows an execution number (none '[*]' or blank) and the kernel is idle;
        fails at once, with the traceback, when a cell raised (Run All stops there)."""
        self.page.wait_for_function(
            """() => {
                const nb = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook');
                if (!nb) return false;
                const prompts = [...nb.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')];
                if (prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent))) return true;
                const busy = prompts.some(p => p.textContent.includes('*'));
                const raised = [...nb.querySelectorAll(
                    '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
                    .some(o => /Traceback/.test(o.textContent));
                return raised && !busy;
            }""", timeout=timeout)
        self.assert_no_errors()
        self.wait_idle(timeout)

    def assert_no_errors(self) -> None:
        errors = self.notebook.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
        tracebacks = errors.filter(has_text=re.compile(r"Traceback|Error"))
        assert tracebacks.count() == 0, f"a cell raised: {tracebacks.first.inner_text()[:2000]}"

    # -- cells ------------------------------------------------------------------------------------
    @property
    def cells(self) -> Locator:
        return self.notebook.locator(".jp-Cell")

    def run_code(self, code: str, expect_text: str | re.Pattern, timeout: float = 60_000) -> list[str]:
        """Add a code cell at the end, type ``code``, run it (Shift+Enter), wait for its output to
        contain ``expect_text``; returns the text of each of the cell's outputs."""
        count = self.cells.count()
        last = self.cells.nth(count - 1)
        last.locator(".jp-Cell-inputWrapper, .jp-MarkdownOutput").first.click()
        self.page.keyboard.press("Escape")                       # command mode
        self.page.keyboard.press("b")                            # insert a cell below, select it
        expect(self.cells).to_have_count(count + 1)
        cell = self.cells.nth(count)
        cell.locator(".cm-content").click()                      # edit mode
        self.page.keyboard.insert_text(code)                     # no key events: no auto-brackets
        self.page.keyboard.press("Shift+Enter")
        output = cell.locator(".jp-OutputArea-output")
        expect(output.filter(has_text=expect_text).first).to_be_visible(timeout=timeout)
        return output.all_inner_texts()

    def run_json(self, code: str, timeout: float = 60_000) -> dict:
        """Run ``code`` that prints one line ``E2E {json}``; returns the decoded JSON."""
        texts = self.run_code(code, "E2E ", timeout)
        for text in texts:
            for line in text.splitlines():
                if line.startswith("E2E "):
                    return json.loads(line[4:])
        raise AssertionError(f"no 'E2E ' line in the output: {texts}")


# -- the TrainPanel, wherever it is rendered (JupyterLab or Voila) --------------------------------
TRAIN_PANEL = ".nbaimaas-train-panel"
LIVE_PLOT = f"{TRAIN_PANEL} .nbaimaas-live-plot"
PROGRESS = f"{TRAIN_PANEL} .nbaimaas-progress"


def fill_train_form(panel: Locator, *, arch: str, optimizer: str, epochs: int) -> None:
    """Choose the architecture and optimiser in their dropdowns and type the number of epochs."""
    panel.locator(".nbaimaas-arch select").select_option(arch)
    panel.locator(".nbaimaas-optimizer select").select_option(optimizer)
    box = panel.locator(".nbaimaas-epochs input")
    box.fill(str(epochs))
    box.press("Tab")                  # an IntText sends its value on change (blur)
    expect(box).to_have_value(str(epochs))
    expect(panel.locator(".nbaimaas-arch select")).to_have_value(arch)
    expect(panel.locator(".nbaimaas-optimizer select")).to_have_value(optimizer)


def train_to_completion(page: Page, panel: Locator, epochs: int, timeout: float = 180_000) -> list[dict]:
    """Click Train and follow the run to its end: the progress bar reaches 100%, the status says
    completed after ``epochs`` epochs, the final metrics appear, and the live plot changed while
    training (at least two different pictures). Returns the plot images seen."""
    watch_images(page, LIVE_PLOT, f"{TRAIN_PANEL} .nbaimaas-status")
    panel.locator(".nbaimaas-train-button").click()
    wait_progress_complete(page, PROGRESS, timeout)
    status = panel.locator(".nbaimaas-status")
    expect(status).to_contain_text(f"completed after {epochs} epochs", timeout=60_000)
    metrics = panel.locator(".nbaimaas-metrics")
    expect(metrics).to_contain_text("val_accuracy", timeout=60_000)
    expect(metrics).to_contain_text(f"completed after {epochs} epochs")
    # The final picture is drawn when the run ends; wait for two different pictures to have loaded.
    page.wait_for_function(
        """() => new Set((window.__e2eImages || []).filter(i => i.hash).map(i => i.hash)).size >= 2""",
        timeout=60_000)
    images, srcs = watched_images(page)
    assert not [i for i in images if "error" in i], f"a plot could not be read: {images}"
    assert len(set(srcs)) >= 2, f"the live plot's src changed fewer than 2 times: {srcs}"
    assert len({i["hash"] for i in images}) >= 2, "the live plot never showed a second picture"
    during = [i for i in images if i.get("status") and not i["status"].startswith("completed")]
    assert during, f"no plot was shown while the run was still going: {images}"
    assert_image_loaded(panel.locator(".nbaimaas-live-plot"))
    expect(panel.locator(".nbaimaas-train-button")).to_be_enabled()
    expect(panel.locator(".nbaimaas-stop-button")).to_be_disabled()
    expect(panel.locator(".nbaimaas-error")).to_have_text("")
    return images
