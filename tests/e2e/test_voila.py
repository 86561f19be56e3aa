"""Voila renders the panels tutorial as an app page: outputs only, live widgets, Train works."""

from __future__ import annotations

import pytest

from .conftest import require_module

require_module("playwright.sync_api")

from playwright.sync_api import expect  # noqa: E402

from .lab import (
    TRAIN_PANEL, assert_no_widget_failures, fill_train_form, screenshot, train_to_completion,
)
from .servers import NOTEBOOKS

pytestmark = pytest.mark.e2e

NOTEBOOK = "06-panels.ipynb"


def _code_lines() -> list[str]:
    """Distinctive lines of the notebook's code cells (none of which the app page may show)."""
    import nbformat

    nb = nbformat.read(NOTEBOOKS / NOTEBOOK, as_version=4)
    lines = [line.strip() for c in nb.cells if c.cell_type == "code" for line in c.source.splitlines()]
    return [line for line in lines if len(line) >= 12]


def test_voila_app_page_hides_code_and_trains(page, voila, artifacts):
    code = _code_lines()
    assert code
    page.goto(voila.url(f"/voila/render/{NOTEBOOK}"))
    # Voila runs the notebook in a kernel, then the page builds the widgets: wait for all three.
    panel = page.locator(TRAIN_PANEL)
    expect(panel).to_be_visible(timeout=180_000)
    expect(page.locator(".nbaimaas-predict-panel .nbaimaas-proba-plot")).to_be_visible()
    expect(page.locator(".nbaimaas-models-panel .nbaimaas-models-table table")).to_contain_text("digits-mlp")
    body = page.locator("body")
    assert_no_widget_failures(body)

    # An app page: the markdown is there, the code is not (no editors, no source lines).
    expect(page.get_by_role("heading", name="TrainPanel: training as a form")).to_be_visible()
    assert page.locator(".jp-InputArea-editor:visible, .cm-editor:visible, .CodeMirror:visible").count() == 0
    text = body.inner_text()
    shown = [line for line in code if line in text]
    assert not shown, f"the app page shows code: {shown}"
    assert "Traceback" not in text

    fill_train_form(panel, arch="lenet", optimizer="adamw", epochs=8)
    train_to_completion(page, panel, epochs=8)
    screenshot(page, artifacts, "voila-train-panel-completed", panel)
