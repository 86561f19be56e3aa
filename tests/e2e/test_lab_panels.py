"""The panels tutorial (notebooks/06-panels.ipynb) in JupyterLab, driven in headless Chromium."""

from __future__ import annotations

import re

import pytest

from .conftest import require_module

require_module("playwright.sync_api")

from playwright.sync_api import expect  # noqa: E402

from .lab import (
    PROGRESS, TRAIN_PANEL, LabNotebook, assert_image_loaded, assert_no_widget_failures,
    fill_train_form, progress_percent, screenshot, train_to_completion, watch_images,
    watched_images,
)

pytestmark = pytest.mark.e2e

NOTEBOOK = "06-panels.ipynb"


def _open_and_run(page, lab, workspace: str) -> LabNotebook:
    nb = LabNotebook(page, lab, NOTEBOOK).open(workspace)
    nb.run_all()
    nb.wait_all_executed()
    nb.assert_no_errors()
    for css in (".nbaimaas-train-panel", ".nbaimaas-predict-panel", ".nbaimaas-models-panel"):
        expect(nb.notebook.locator(css)).to_be_visible()
    assert_no_widget_failures(nb.notebook)
    return nb


def test_train_panel_trains_then_stops_and_kernel_lives(page, lab, artifacts):
    nb = _open_and_run(page, lab, "e2e-train")
    panel = nb.notebook.locator(TRAIN_PANEL)
    panel.scroll_into_view_if_needed()

    # 1. A full run with the form changed from its defaults (mlp/adam/5 in the notebook).
    fill_train_form(panel, arch="lenet", optimizer="adamw", epochs=6)
    train_to_completion(page, panel, epochs=6)
    screenshot(page, artifacts, "lab-train-panel-completed", panel)
    trained = nb.run_json(
        'import json; r = train_panel.result\n'
        'print("E2E", json.dumps({"status": r.status, "epochs": r.epochs_run, '
        '"arch": r.spec["model"]["arch"], "optimizer": r.spec["optimizer"]}))')
    assert trained == {"status": "completed", "epochs": 6, "arch": "lenet", "optimizer": "adamw"}

    # 2. A long run, stopped from the Stop button while it trains.
    fill_train_form(panel, arch="lenet", optimizer="sgd", epochs=500)
    watch_images(page, f"{TRAIN_PANEL} .nbaimaas-live-plot")
    panel.locator(".nbaimaas-train-button").click()
    stop = panel.locator(".nbaimaas-stop-button")
    expect(stop).to_be_enabled(timeout=60_000)
    # Running for real: the bar has moved (the first epoch's steps are being counted).
    page.wait_for_function(
        """(sel) => { const b = document.querySelector(sel + ' .progress-bar');
                      return b && parseFloat(b.style.width) > 0; }""", arg=PROGRESS)
    stop.click()
    status = panel.locator(".nbaimaas-status")
    expect(status).to_contain_text("stopped", timeout=120_000)
    expect(panel.locator(".nbaimaas-train-button")).to_be_enabled()
    expect(stop).to_be_disabled()
    assert progress_percent(panel.locator(".nbaimaas-progress")) < 100
    expect(panel.locator(".nbaimaas-metrics")).to_contain_text("stopped", timeout=60_000)
    expect(panel.locator(".nbaimaas-error")).to_have_text("")
    screenshot(page, artifacts, "lab-train-panel-stopped", panel)

    # 3. The kernel is still usable: a new cell runs and shows its output.
    after = nb.run_json(
        'import json; r = train_panel.result\n'
        'print("E2E", json.dumps({"status": r.status, "epochs": r.epochs_run, "answer": 6 * 7}))')
    assert after["status"] == "stopped" and after["answer"] == 42
    assert after["epochs"] < 500
    screenshot(page, artifacts, "lab-train-panel-kernel-alive")


def test_predict_panel_matches_api_predict(page, lab, artifacts):
    nb = _open_and_run(page, lab, "e2e-predict")
    panel = nb.notebook.locator(".nbaimaas-predict-panel")
    panel.scroll_into_view_if_needed()
    # The notebook trained digits-mlp and digits-lenet and opened the panel on digits-mlp.
    expect(panel.locator(".nbaimaas-predict-model select")).to_have_value("digits-mlp:1")
    assert_image_loaded(panel.locator(".nbaimaas-proba-plot"))

    watch_images(page, ".nbaimaas-predict-panel .nbaimaas-proba-plot")
    panel.locator(".nbaimaas-predict-model select").select_option("digits-lenet:1")
    readout = panel.locator(".nbaimaas-sample .widget-readout")
    readout.fill("5")                 # the slider's editable readout: type a value, Enter
    readout.press("Enter")
    expect(readout).to_have_text("5")
    expect(panel.locator(".nbaimaas-sample [role=slider]")).to_have_attribute("aria-valuenow", re.compile(r"^5(\.0)?$"))

    # What ai.predict says for the same input: the model's own test sample 5, computed in the
    # kernel independently of the panel. The kernel handles the widget changes above before this
    # cell, and the browser applies the panel's updates before the cell's output: no race.
    expected = nb.run_json(
        "import json\n"
        "ref, k = predict_panel.model.value, predict_panel.sample.value\n"
        "x = ai.sample(ai.DataSpec.from_dict(ai.model(ref).spec['data']), n=32)['inputs'][k:k + 1]\n"
        "p = ai.predict(ref, x)\n"
        "print('E2E', json.dumps({'ref': ref, 'k': k, 'label': str(p.labels[0]), "
        "'proba': float(p.probabilities[0].max())}))")
    assert expected["ref"] == "digits-lenet:1" and expected["k"] == 5, expected

    top = panel.locator(".nbaimaas-top-label")
    expect(top).to_have_text(f"{expected['label']} ({expected['proba']:.2f})")
    assert top.locator("b").inner_text() == expected["label"]
    expect(panel.locator(".nbaimaas-truth")).to_contain_text("true:")
    proba = panel.locator(".nbaimaas-proba-plot")
    assert_image_loaded(proba)
    images, _ = watched_images(page)
    assert images and all("hash" in i for i in images), f"the probability chart did not redraw: {images}"
    # A bar chart of 10 class probabilities is wider than tall and not a sliver.
    width, height = proba.evaluate("el => [el.naturalWidth, el.naturalHeight]")
    assert width > 100 and height > 100, (width, height)
    expect(panel.locator(".nbaimaas-error")).to_have_text("")

    # The ModelsPanel lists both registered models.
    table = nb.notebook.locator(".nbaimaas-models-panel .nbaimaas-models-table table")
    expect(table).to_contain_text("digits-mlp")
    expect(table).to_contain_text("digits-lenet")
    screenshot(page, artifacts, "lab-predict-panel", panel)
