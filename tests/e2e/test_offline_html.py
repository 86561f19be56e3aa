"""The README's headless run writes out/quickstart.html: offline, it shows widgets and plots."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import require_module

require_module("playwright.sync_api")

from playwright.sync_api import expect  # noqa: E402

from .conftest import ROOT, TIMEOUT_MS
from .lab import WIDGET_FAILURES, progress_percent, screenshot, training_cells

pytestmark = pytest.mark.e2e

OUT = ROOT / "out" / "quickstart.html"
#: What the page is made from: a page older than any of these is stale and is made again.
SOURCES = [ROOT / "notebooks" / "01-quickstart.ipynb", ROOT / "nbaimaas" / "_export.py",
           ROOT / "nbaimaas" / "_static" / "html-manager-embed.js"]
LOCAL_SCHEMES = ("file:", "data:", "blob:")


@pytest.fixture(scope="module")
def quickstart_html(browser, artifacts) -> Path:
    """out/quickstart.html as `bash .ci/quickstart` wrote it; when it is missing or older than
    the notebook or the exporter, the same exporter makes a fresh one among the artefacts.
    NBAIMAAS_QUICKSTART_HTML names a page to use instead."""
    given = os.environ.get("NBAIMAAS_QUICKSTART_HTML")
    if given:
        return Path(given).resolve()
    newest = max(p.stat().st_mtime for p in SOURCES if p.exists())
    if OUT.exists() and OUT.stat().st_mtime >= newest:
        return OUT
    target = artifacts / "quickstart.html"
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg", PYTHONHASHSEED="0")
    env.pop("NBAIMAAS_HOME", None)     # the notebook makes its own private registry
    proc = subprocess.run([sys.executable, "-m", "nbaimaas._export", "quickstart", "--out", str(target)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"the headless quickstart failed:\n{proc.stdout}\n{proc.stderr}"
    return target


def test_offline_html_shows_widgets_and_plots(browser, quickstart_html, artifacts):
    assert quickstart_html.exists(), quickstart_html
    context = browser.new_context(viewport={"width": 1400, "height": 1400}, offline=True)
    context.set_default_timeout(TIMEOUT_MS)
    requests: list[str] = []
    blocked: list[str] = []
    sockets: list[str] = []

    def only_local(route):
        url = route.request.url
        if url.startswith(LOCAL_SCHEMES):
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    context.route("**/*", only_local)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda msg: console.append(f"[{msg.type}] {msg.text}"))
    page.on("pageerror", lambda exc: console.append(f"[pageerror] {exc}"))
    page.on("request", lambda req: requests.append(req.url))
    page.on("websocket", lambda ws: sockets.append(ws.url))
    try:
        page.goto(quickstart_html.as_uri())
        expected = training_cells("01-quickstart.ipynb")
        views = page.locator(".nbaimaas-live")
        expect(views).to_have_count(expected)

        # Every stored widget view was rendered by the inlined widget manager.
        view_scripts = page.locator('script[type="application/vnd.jupyter.widget-view+json"]')
        assert view_scripts.count() >= expected
        page.wait_for_function(
            """() => [...document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]')]
                     .every(s => { const sub = s.parentElement.querySelector('.widget-subarea');
                                   return sub && sub.children.length > 0; })""")
        text = page.locator("body").inner_text()
        for bad in WIDGET_FAILURES:
            assert bad not in text, f"{bad!r} on the offline page"
        assert "VBox(children" not in text

        for i in range(expected):
            view = views.nth(i)
            assert progress_percent(view.locator(".nbaimaas-progress")) == 100
            expect(view.locator(".nbaimaas-status")).to_contain_text("completed after")
            plot = view.locator("img.nbaimaas-live-plot")
            expect(plot).to_be_attached()      # drawn during the run, hidden once the static figure showed
            expect(plot).to_be_hidden()

        # Plots: every <img> decoded; the static figures are inline PNG data URIs.
        page.wait_for_function("() => [...document.images].every(i => i.complete)")
        images = page.evaluate("""() => [...document.images].map(i => ({
            src: i.src.slice(0, 22), w: i.naturalWidth, h: i.naturalHeight, cls: i.className}))""")
        broken = [i for i in images if not (i["w"] > 0 and i["h"] > 0)]
        assert not broken, f"images that did not load offline: {broken}"
        pngs = [i for i in images if i["src"].startswith("data:image/png;base64")]
        assert len(pngs) >= expected + 1, f"too few inline PNG plots: {images}"

        # No blank output areas: each shows text, a loaded image or a rendered widget.
        blank = page.evaluate("""() => [...document.querySelectorAll('.jp-OutputArea-output')]
            .filter(o => {
                const r = o.getBoundingClientRect();
                const hasText = o.innerText.trim().length > 0;
                const hasImg = [...o.querySelectorAll('img')].some(i => i.naturalWidth > 0);
                const hasWidget = o.querySelector('.widget-subarea > *') !== null;
                return r.height < 5 || !(hasText || hasImg || hasWidget);
            }).map(o => o.className + ' ' + o.outerHTML.slice(0, 200))""")
        assert not blank, f"blank output areas: {blank}"

        # Nothing left the machine: every request was to a file, data: or blob: URL.
        remote = [u for u in requests if not u.startswith(LOCAL_SCHEMES)]
        assert not blocked and not remote and not sockets, \
            f"the offline page asked the network for: {sorted(set(blocked + remote + sockets))}"
        views.first.scroll_into_view_if_needed()
        screenshot(page, artifacts, "offline-quickstart-html", views.first)
    except BaseException:
        page.screenshot(path=str(artifacts / "test_offline_html_shows_widgets_and_plots-FAILED.png"))
        raise
    finally:
        (artifacts / "test_offline_html_shows_widgets_and_plots-console.log").write_text(
            "\n".join(console + [f"[request] {u}" for u in requests]) + "\n")
        context.close()
