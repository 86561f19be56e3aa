"""%aimaas_tune and %%aimaas_tune, driven through a real IPython shell, and plot_tuning."""

from __future__ import annotations

import pytest

pytest.importorskip("optuna")
pytest.importorskip("matplotlib")

from IPython.core.error import UsageError  # noqa: E402
from IPython.core.interactiveshell import InteractiveShell  # noqa: E402

import nbaimaas as ai  # noqa: E402
from nbaimaas.notebook import plots  # noqa: E402
from nbaimaas.results import TuneResult  # noqa: E402

QUICK = "--data digits --model mlp --limit 300 --epochs 2"
SPACE = """'{"lr": {"low": 0.001, "high": 0.1, "log": true}}'"""


@pytest.fixture
def shell(monkeypatch, tmp_path):
    monkeypatch.setenv("NBAIMAAS_PROGRESS", "text")
    ai.connect("local", home=tmp_path / "home")
    InteractiveShell.clear_instance()
    sh = InteractiveShell.instance()
    sh.run_line_magic("load_ext", "nbaimaas")
    yield sh
    InteractiveShell.clear_instance()


def test_line_form_prints_each_trial_and_stores_the_result(shell, capsys):
    result = shell.run_line_magic(
        "aimaas_tune", f"{QUICK} --space {SPACE} --trials 3 --metric val_accuracy --name tm -o t")
    assert isinstance(result, TuneResult) and shell.user_ns["t"] is result
    assert len(result.trials) == 3 and result.metric == "val_accuracy"
    assert result.model and ai.model("tm@best").ref == result.model
    out = capsys.readouterr().out
    assert out.count("val_accuracy=") == 3 and "trial 0" in out and "trial 2" in out


def test_cell_form_reads_toml_with_a_space_table_and_flags_override(shell):
    body = '''
epochs = 2
trials = 5
metric = "val_accuracy"
study = "cellstudy"
[data]
name = "digits"
limit = 300
[space]
lr = {low = 0.001, high = 0.1, log = true}
model.options.hidden = [[16], [32, 16]]
'''
    result = shell.run_cell_magic("aimaas_tune", "--trials 2", body)
    assert len(result.trials) == 2 and result.study == "cellstudy"
    assert set(result.best_params) == {"lr", "model.options.hidden"}
    assert result.best_params["model.options.hidden"] in ([16], [32, 16])


@pytest.mark.parametrize("line, message", [
    (f"{QUICK} --space '{{lr: 1}}'", "--space is not valid JSON"),
    (f"{QUICK} --space '[1, 2]'", "--space must be a JSON object"),
    (f"""{QUICK} --space '{{"lrr": [0.1]}}'""", "did you mean 'lr'?"),
    (f"{QUICK} --space {SPACE} --metric val_acc", "did you mean 'val_accuracy'?"),
    (QUICK, "a search space needs at least one entry"),
])
def test_mistakes_are_one_line_usage_errors(shell, line, message):
    with pytest.raises(UsageError) as info:
        shell.run_line_magic("aimaas_tune", line)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_help_ends_with_the_python_twin(shell, capsys):
    assert shell.run_line_magic("aimaas_tune", "-h") is None
    out = capsys.readouterr().out
    assert "--space SPACE" in out and "Python: ai.tune(" in out


def test_service_backend_says_tune_locally(shell, monkeypatch):
    from nbaimaas.backends.client import ServiceClient

    monkeypatch.setattr(ai.api, "backend", lambda: ServiceClient("http://127.0.0.1:9", token="t"))
    with pytest.raises(UsageError, match="connect local first"):
        shell.run_line_magic("aimaas_tune", f"{QUICK} --space {SPACE}")


def test_plot_tuning_marks_pruned_trials_and_best_so_far():
    trials = [{"number": 0, "state": "COMPLETE", "value": 0.5, "params": {}, "epochs": 3},
              {"number": 1, "state": "PRUNED", "value": 0.9, "params": {}, "epochs": 1},
              {"number": 2, "state": "COMPLETE", "value": 0.3, "params": {}, "epochs": 3},
              {"number": 3, "state": "FAIL", "value": None, "params": {}, "epochs": 1},
              {"number": 4, "state": "COMPLETE", "value": 0.4, "params": {}, "epochs": 3}]
    result = TuneResult({}, 0.3, "val_loss", "minimize", trials, study="s")
    ax = plots.plot_tuning(result)
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    assert set(lines) == {"complete", "pruned", "best so far"}
    assert list(lines["best so far"].get_ydata()) == [0.5, 0.3, 0.3, 0.3]
    assert list(lines["best so far"].get_xdata()) == [0, 2, 4, 4]
    assert list(lines["pruned"].get_xdata()) == [1]
    empty = plots.plot_tuning(TuneResult({}, None, "val_loss", "minimize", [], study="s"))
    assert empty.get_title() == "no finished trials yet"
