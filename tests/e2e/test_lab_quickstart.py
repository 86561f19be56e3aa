"""The quickstart (notebooks/01-quickstart.ipynb) run in JupyterLab: live views render as widgets."""

from __future__ import annotations

import pytest

from .conftest import require_module

require_module("playwright.sync_api")

from playwright.sync_api import expect  # noqa: E402

from .lab import (
    LabNotebook, assert_image_loaded, assert_no_widget_failures, progress_percent, screenshot,
    training_cells,
)

pytestmark = pytest.mark.e2e

NOTEBOOK = "01-quickstart.ipynb"


def test_quickstart_live_views_render_as_widgets(page, lab, artifacts):
    expected = training_cells(NOTEBOOK)
    assert expected >= 1, "the quickstart no longer trains with %aimaas_train"
    nb = LabNotebook(page, lab, NOTEBOOK).open("e2e-quickstart")
    nb.run_all()
    nb.wait_all_executed(timeout=420_000)
    nb.assert_no_errors()
    assert_no_widget_failures(nb.notebook)

    views = nb.notebook.locator(".nbaimaas-live")
    expect(views).to_have_count(expected)
    train_cells = nb.cells.filter(has=page.locator(".nbaimaas-live"))
    expect(train_cells).to_have_count(expected)
    for i in range(expected):
        view, cell = views.nth(i), train_cells.nth(i)
        view.scroll_into_view_if_needed()
        # Widgets, not their text repr: a real progress bar, status line and plot image.
        bar = view.locator(".nbaimaas-progress")
        expect(bar.locator(".progress-bar")).to_be_attached()
        assert progress_percent(bar) == 100, f"live view {i}: the bar stopped at {progress_percent(bar)}%"
        expect(view.locator(".nbaimaas-status")).to_contain_text("completed after")
        # The live plot drew during the run; at the end the static figure below replaces it,
        # so the cell shows the curves once.
        live_plot = view.locator("img.nbaimaas-live-plot")
        expect(live_plot).to_be_attached()
        assert live_plot.get_attribute("src").startswith("blob:")
        expect(live_plot).to_be_hidden()
        # The same cell ends with a static PNG of the final learning curves (for saved copies).
        curve = cell.locator(".jp-RenderedImage img")
        expect(curve).to_have_count(1)
        assert_image_loaded(curve)
        assert curve.get_attribute("src").startswith("data:image/png"), curve.get_attribute("src")[:40]
        assert "VBox(children" not in cell.locator(".jp-Cell-outputWrapper").inner_text()
    screenshot(page, artifacts, "lab-quickstart-final-curve", train_cells.last.locator(".jp-Cell-outputWrapper"))
    nb.cells.last.scroll_into_view_if_needed()
    screenshot(page, artifacts, "lab-quickstart-end")
