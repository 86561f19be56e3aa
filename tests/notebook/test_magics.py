"""The magics, driven through a real IPython InteractiveShell (``%load_ext nbaimaas``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import nbaimaas as ai
from nbaimaas.events import Progress
from nbaimaas.notebook import live

QUICK = "--data digits --model mlp --limit 300 --epochs 2"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One store with one trained model for the read-only tests of this module."""
    home = tmp_path_factory.mktemp("magics-home")
    ai.connect("local", home=home)
    ai.train(data="digits", model="mlp", limit=300, epochs=2, name="dm")
    return home


@pytest.fixture
def shell(monkeypatch):
    monkeypatch.setenv("NBAIMAAS_PROGRESS", "text")
    InteractiveShell.clear_instance()
    sh = InteractiveShell.instance()
    sh.run_line_magic("load_ext", "nbaimaas")
    yield sh
    InteractiveShell.clear_instance()


@pytest.fixture
def fresh(tmp_path):
    """An empty store of this test's own (for tests that train or change the registry)."""
    ai.connect("local", home=tmp_path / "home")
    return tmp_path / "home"


@pytest.fixture
def trained(store):
    ai.connect("local", home=store)
    return "dm"


def magic(sh, text: str):
    name, _, line = text.partition(" ")
    return sh.run_line_magic(name, line)


# -- training ----------------------------------------------------------------------------------
def test_train_line_form_returns_result_and_stores_it(shell, fresh, capsys):
    result = magic(shell, f"aimaas_train {QUICK} --name quick -o r")
    assert result.status == "completed" and result.epochs_run == 2
    assert shell.user_ns["r"] is result
    assert result.model == "quick:1"
    out = capsys.readouterr().out
    assert "epoch 2/2" in out and "completed after 2 epochs" in out


TOML_SPEC = """epochs = 3
lr = 0.01
name = "tomlnet"
[data]
name = "digits"
limit = 300
[model]
arch = "layers"
[[model.layers]]
type = "flatten"
[[model.layers]]
type = "linear"
out = 32
[[model.layers]]
type = "relu"
[[model.layers]]
type = "linear"
[init]
scheme = "xavier_uniform"
"""
YAML_SPEC = """# the same spec in YAML
epochs: 3
lr: 0.01
name: tomlnet
data: {name: digits, limit: 300}
model:
  arch: layers
  layers:
    - type: flatten
    - {type: linear, out: 32}
    - type: relu
    - type: linear
init: {scheme: xavier_uniform}
"""


def test_train_cell_form_reads_toml_and_line_flags_override(shell, fresh):
    body = TOML_SPEC
    result = shell.run_cell_magic("aimaas_train", "--epochs 1", body)
    assert result.epochs_run == 1                  # the line's flag wins over the cell's 3
    spec = result.spec
    assert spec["lr"] == 0.01 and spec["name"] == "tomlnet"
    assert spec["data"]["name"] == "digits" and spec["data"]["limit"] == 300
    assert spec["model"]["arch"] == "layers" and len(spec["model"]["layers"]) == 4
    assert spec["init"]["scheme"] == "xavier_uniform"


def test_train_on_notebook_variables(shell, fresh):
    rng = np.random.default_rng(0)
    shell.user_ns["X"] = rng.normal(size=(120, 4)).astype("float32")
    shell.user_ns["y"] = (shell.user_ns["X"][:, 0] > 0).astype("int64")
    result = magic(shell, "aimaas_train --data X,y --model mlp --epochs 1")
    assert result.status == "completed"
    assert result.spec["data"]["name"] == "inline"


def test_ctrl_c_stops_keeps_best_checkpoint_and_kernel_lives(shell, fresh, monkeypatch, capsys):
    original = live.LiveView.update

    def interrupted(self, event):
        # Ctrl-C arrives while the live view draws: the first tick of epoch 2 (so one epoch ended).
        if isinstance(event, Progress) and event.epoch >= 2 and not getattr(self, "_hit", False):
            self._hit = True
            raise KeyboardInterrupt
        return original(self, event)

    monkeypatch.setattr(live.LiveView, "update", interrupted)
    result = magic(shell, "aimaas_train --data digits --model mlp --limit 300 --epochs 60 --name ctrlc")
    assert result.status == "stopped"
    assert 1 <= result.best_epoch < 60
    assert (Path(result.checkpoint) / "best.pt").exists()
    assert result.model == "ctrlc:1"
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("Stopped run")]
    assert len(lines) == 1 and "best checkpoint" in lines[0] and result.checkpoint in lines[0]
    monkeypatch.setattr(live.LiveView, "update", original)
    assert magic(shell, "aimaas_models ctrlc")[0].ref == "ctrlc:1"      # the next cell works


def test_background_attach_and_stop(shell, fresh, capsys):
    run = magic(shell, "aimaas_train --data digits --model mlp --limit 300 --epochs 500 --background -o job")
    assert shell.user_ns["job"] is run and run.id in capsys.readouterr().out
    result = magic(shell, "aimaas_stop job")
    assert result.status in ("stopped", "completed") and run.done
    again = magic(shell, f"aimaas_attach {run.id}")
    assert again.run_id == run.id and again.status == result.status


def test_lr_find_plots_and_suggests(shell, fresh):
    finding = magic(shell, "aimaas_lr_find --data digits --model mlp --limit 300 -o f")
    assert finding["suggestion"] > 0 and len(finding["lrs"]) == len(finding["losses"])
    assert shell.user_ns["f"] is finding and "suggested lr" in repr(finding)


# -- data, models, evaluation, prediction ------------------------------------------------------
def test_data_describes_builtin_and_variables(shell, trained):
    summary = magic(shell, "aimaas_data digits --limit 300")
    assert summary["info"]["task"] == "classification"
    assert "data summary" in summary._repr_html_()
    shell.user_ns["frame"] = __import__("pandas").DataFrame({"a": [1.0, 2, 3, 4] * 10, "t": [0, 1] * 20})
    table = magic(shell, "aimaas_data frame --target t")
    assert table["info"]["modality"] == "tabular" and "first rows" in table._repr_html_()


def test_eval_predict_models_summary(shell, trained):
    ev = magic(shell, "aimaas_eval dm -o ev")
    assert ev.confusion and shell.user_ns["ev"] is ev and "test_accuracy" in ev.metrics
    shell.user_ns["imgs"] = ai.sample("digits", n=5, limit=300)["inputs"]
    pred = magic(shell, "aimaas_predict dm imgs --top 3 -o p")
    assert len(pred) == 5 and len(pred.top(3)[0]) == 3 and shell.user_ns["p"] is pred
    assert pred.labels == ai.predict("dm", shell.user_ns["imgs"]).labels
    listing = magic(shell, "aimaas_models")
    assert listing.names() == ["dm"]
    assert magic(shell, "aimaas_summary --model mlp --data digits").total_params > 0


def test_result_lands_in_underscore(shell, trained):
    shell.run_cell("%aimaas_models", store_history=True)
    assert shell.user_ns["_"].names() == ["dm"]
    shell.run_cell("r = %aimaas_eval dm")
    assert shell.user_ns["r"].model == "dm:1"


def test_model_from_a_train_result_variable(shell, trained):
    shell.user_ns["res"] = ai.models("dm")[0]
    assert magic(shell, "aimaas_eval res").model == "dm:1"


def test_connect_local(shell, tmp_path, capsys):
    backend = magic(shell, f"aimaas_connect local --home {tmp_path / 'other'}")
    assert backend.name == "local" and "Connected" in capsys.readouterr().out
    assert list(magic(shell, "aimaas_models")) == []


# -- help and user mistakes --------------------------------------------------------------------
def test_help_shows_usage_and_python_twin(shell, capsys):
    assert magic(shell, "aimaas_train --help") is None
    out = capsys.readouterr().out
    assert "%aimaas_train [--data DATA]" in out and "Python: ai.train(" in out
    for name in ("aimaas_data", "aimaas_eval", "aimaas_predict", "aimaas_models", "aimaas_lr_find",
                 "aimaas_attach", "aimaas_stop", "aimaas_connect", "aimaas_summary"):
        magic(shell, f"{name} -h")
        assert "Python: ai." in capsys.readouterr().out, name


@pytest.mark.parametrize("line, message", [
    ("aimaas_train --epochz 3", "unrecognized arguments: --epochz 3"),
    ("aimaas_train --data digts", "unknown dataset 'digts' (did you mean 'digits'?)"),
    ("aimaas_train --model mlpp --limit 50", "unknown architecture 'mlpp' (did you mean 'mlp'?)"),
    ("aimaas_train --data X,y", "name 'X' is not defined in the notebook"),
    ("aimaas_train --lr -1", "lr must be a positive number, got -1.0"),
    ("aimaas_train --lr fast", "argument --lr: invalid float value: 'fast'"),
    ("aimaas_predict dm nothing", "name 'nothing' is not defined in the notebook"),
    ("aimaas_eval nosuchmodel", "no model named 'nosuchmodel'"),
    ("aimaas_attach run-missing", "no run 'run-missing'"),
])
def test_user_mistakes_are_one_line_usage_errors(shell, trained, line, message):
    with pytest.raises(UsageError) as info:
        magic(shell, line)
    text = str(info.value)
    assert message in text and "\n" not in text


def test_a_yaml_body_is_the_same_spec_as_toml(shell, fresh):
    from nbaimaas.notebook._magic_args import body_kwargs

    assert body_kwargs(YAML_SPEC, {}) == body_kwargs(TOML_SPEC, {})
    result = shell.run_cell_magic("aimaas_train", "--epochs 1", YAML_SPEC)
    assert result.epochs_run == 1 and result.spec["lr"] == 0.01
    assert result.spec["data"]["limit"] == 300 and len(result.spec["model"]["layers"]) == 4


@pytest.mark.parametrize("body, message", [
    ("epochs = = 3", "and as YAML it is a str"),
    ("epochs: [3", "nor valid YAML"),
    ("- 3\n- 4", "and as YAML it is a list"),
    ("!!python/object/apply:os.system ['true']", "nor valid YAML"),     # safe_load: no objects
])
def test_a_body_that_is_neither_toml_nor_yaml_is_one_line(shell, body, message):
    with pytest.raises(UsageError) as info:
        shell.run_cell_magic("aimaas_train", "", body)
    assert "valid TOML" in str(info.value) and message in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_toml_body_is_a_usage_error(shell, fresh):
    with pytest.raises(UsageError, match="not valid TOML"):
        shell.run_cell_magic("aimaas_train", "", "epochs = = 3")
    with pytest.raises(UsageError, match="unknown train option 'epoch'"):
        shell.run_cell_magic("aimaas_train", "", "epoch = 3")


def test_usage_error_in_a_cell_prints_one_line_without_traceback(shell, capsys):
    result = shell.run_cell("%aimaas_train --data digts")
    assert isinstance(result.error_in_exec, UsageError)
    err = capsys.readouterr().err
    assert "UsageError: unknown dataset 'digts'" in err and "Traceback" not in err


def test_unload_removes_the_magics(shell):
    shell.run_line_magic("unload_ext", "nbaimaas")
    assert "aimaas_train" not in shell.magics_manager.magics["line"]


def test_eval_and_predict_pictures_for_regression_and_forecast(shell, fresh, capsys):
    magic(shell, "aimaas_train --data diabetes --model mlp --epochs 1 --name dia")
    magic(shell, "aimaas_train --data sunspots --model mlp --epochs 1 --name spots")
    capsys.readouterr()
    ev = magic(shell, "aimaas_eval dia")
    assert ev.task == "regression" and ev.confusion is None and ev.metrics
    assert magic(shell, "aimaas_eval spots").task == "forecast"
    shell.user_ns["recent"] = np.asarray(ai.sample("sunspots", n=1)["inputs"], dtype=float)[-30:]
    pred = magic(shell, "aimaas_predict spots recent --horizon 3")
    assert np.asarray(pred.values).shape == (1, 3)
    shown = capsys.readouterr().out
    assert "<residuals>" in shown and shown.count("<forecast>") == 2


def test_train_on_two_processes_from_the_magic(shell, fresh):
    result = magic(shell, "aimaas_train --data digits --model mlp --limit 400 --epochs 2 --nproc 2 --name ddp")
    assert result.status == "completed" and result.model == "ddp:1"
    assert result.spec["nproc"] == 2
