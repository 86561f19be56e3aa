"""Fixtures for the browser tests: JupyterLab / Voila servers and Debian's Chromium via Playwright.

The tests run in the default ``pytest`` run. Without /usr/bin/chromium (or Python playwright)
they skip with a reason, unless NBAIMAAS_E2E_REQUIRED=1 (CI sets it) turns that into a failure.
Artefacts go to ``artifacts/e2e/`` (override: NBAIMAAS_E2E_ARTIFACTS): a screenshot of every
test's final state, and for a failing test a screenshot of the moment plus the page's console log.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
from pathlib import Path

import pytest

from . import servers

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("NBAIMAAS_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("NBAIMAAS_E2E_ARTIFACTS", ROOT / "artifacts" / "e2e"))
#: FIELD-NOTES: the flags that run Debian's Chromium headless as root, with no network of its own.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
#: Widgets, kernels and a training run on 2 shared cores: be patient, never sleep.
TIMEOUT_MS = 90_000


def _required() -> bool:
    return os.environ.get("NBAIMAAS_E2E_REQUIRED", "").strip() not in ("", "0")


def _missing(reason: str) -> None:
    if _required():
        pytest.fail(f"{reason} (NBAIMAAS_E2E_REQUIRED is set; run .ci/e2e-deps)", pytrace=False)
    pytest.skip(f"{reason}; run .ci/e2e-deps to install it")


def require_module(name: str) -> None:
    """At the top of a test module: skip the whole module when ``name`` cannot be imported (an
    import error, so a failure, when NBAIMAAS_E2E_REQUIRED is set)."""
    try:
        importlib.import_module(name)
    except ImportError:
        if _required():
            raise
        pytest.skip(f"{name} is not installed; run .ci/e2e-deps to install it", allow_module_level=True)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item, so fixtures can tell that a test failed."""
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


def artifact_name(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid.split("::", 1)[-1]).strip("_")[:120]


@pytest.fixture(scope="package")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="package")
def browser():
    """Debian's Chromium, headless, launched by Playwright (which gives it a fresh temporary
    user-data-dir, deleted at close); one per session, a new context per test."""
    if not Path(CHROMIUM).exists():
        _missing(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Python playwright is not installed")
    pw = sync_playwright().start()
    try:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
                                      chromium_sandbox=False)
    except Exception:
        pw.stop()
        raise
    yield chromium
    chromium.close()
    pw.stop()


@pytest.fixture(scope="package")
def e2e_workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="package")
def lab_server(browser, e2e_workdir, artifacts):
    """JupyterLab on a free loopback port with a token, serving a private copy of notebooks/
    (outputs cleared) with isolated config/runtime/workspace/settings folders; SIGTERM after."""
    root = servers.copy_notebooks(e2e_workdir / "lab-notebooks")
    server = servers.start_lab(root, e2e_workdir / "lab-state", artifacts / "logs")
    yield server
    server.stop()


@pytest.fixture
def lab(lab_server):
    """The session's JupyterLab; each test's kernels are shut down after it (2 cores are few)."""
    yield lab_server
    lab_server.shutdown_kernels()


@pytest.fixture(scope="package")
def voila_server(browser, e2e_workdir, artifacts):
    if importlib.util.find_spec("voila") is None:
        _missing("voila is not installed")
    root = servers.copy_notebooks(e2e_workdir / "voila-notebooks")
    server = servers.start_voila(root, e2e_workdir / "voila-state", artifacts / "logs")
    yield server
    server.stop()


@pytest.fixture
def voila(voila_server):
    yield voila_server
    voila_server.shutdown_kernels()


@pytest.fixture
def page(browser, request, artifacts):
    """A fresh browser context and page; its console is recorded. After the test: the console
    log is written next to the screenshots, and a failing test gets a screenshot of the moment."""
    context = browser.new_context(viewport={"width": 1400, "height": 1400}, accept_downloads=False)
    context.set_default_timeout(TIMEOUT_MS)
    pg = context.new_page()
    lines: list[str] = []
    pg.on("console", lambda msg: lines.append(f"[{msg.type}] {msg.text}"))
    pg.on("pageerror", lambda exc: lines.append(f"[pageerror] {exc}"))
    pg.on("requestfailed", lambda req: lines.append(f"[requestfailed] {req.url} {req.failure}"))
    pg.console_lines = lines          # tests may look at it too
    yield pg
    name = artifact_name(request.node.nodeid)
    failed = any(getattr(getattr(request.node, f"rep_{w}", None), "failed", False)
                 for w in ("setup", "call"))
    if failed:
        try:
            pg.screenshot(path=str(artifacts / f"{name}-FAILED.png"), timeout=15_000)
        except Exception as exc:  # noqa: BLE001 - a broken page must not hide the real failure
            lines.append(f"[e2e] screenshot failed: {exc}")
    (artifacts / f"{name}-console.log").write_text("\n".join(lines) + "\n")
    context.close()
