"""Hyperparameter tuning on Optuna: the search space, a study that helps, pruning, shared storage."""

from __future__ import annotations

import multiprocessing
import sys

import pytest

import nbaimaas as ai
from nbaimaas.errors import SpecError, UserError
from nbaimaas.specs import TrainSpec, TuneSpec, apply_params

optuna = pytest.importorskip("optuna")

QUICK = {"data": "digits", "model": "mlp", "limit": 300}
LOG_LR = {"lr": {"low": 1e-3, "high": 1e-1, "log": True}}


# -- the search space --------------------------------------------------------------------------
@pytest.mark.parametrize("space, words", [
    ({"lrr": [0.1]}, "did you mean 'lr'?"),
    ({"data.limitt": [10]}, "did you mean 'data.limit'?"),
    ({"init.schme": ["xavier_normal"]}, "did you mean 'init.scheme'?"),
    ({"lr": {"low": 1e-3, "hi": 1e-1}}, "did you mean 'high'?"),
    ({"lr": {"low": 0.1, "high": 0.01}}, "low must be below high"),
    ({"lr": {"low": 0, "high": 1, "log": True}}, "log range needs low > 0"),
    ({"lr": {"low": -1.0, "high": 1.0}}, "lr must be a positive number"),
    ({"epochs": {"low": 1, "high": 5}}, 'add "int": true'),
    ({"batch_size": {"low": 16.5, "high": 64, "int": True}}, "needs integer low and high"),
    ({"optimizer": ["adam", "sgdd"]}, "did you mean 'sgd'?"),
    ({"optimizer": []}, "at least one choice"),
    ({"lr": 0.1}, "use a list of choices or a range"),
    ({}, "at least one entry"),
])
def test_bad_search_spaces_fail_in_one_line(space, words):
    with pytest.raises(UserError) as err:
        TuneSpec(space=space)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_space_paths_direction_and_json_round_trip():
    spec = TuneSpec(space={**LOG_LR, "model.options.hidden": [[64], [128, 64]],
                           "batch_size": {"low": 16, "high": 64, "int": True, "step": 16}},
                    metric="val_accuracy")
    assert spec.direction == "maximize" and TuneSpec(space=LOG_LR).direction == "minimize"
    assert TuneSpec.from_json(spec.to_json()) == spec
    with pytest.raises(UserError, match="did you mean .val_accuracy."):
        TuneSpec(space=LOG_LR, metric="val_acc")
    with pytest.raises(SpecError, match="leave monitor unset"):
        TuneSpec(base=TrainSpec(monitor="val_loss"), space=LOG_LR, metric="val_accuracy")


def test_params_apply_as_nested_replace_and_options_merge():
    base = TrainSpec(model=ai.ModelSpec("mlp", options={"dropout": 0.1}), name="keep")
    spec = TuneSpec(base=base, space=LOG_LR, metric="val_f1")
    trial = spec.trial_spec({"lr": 0.02, "model.options.hidden": [32], "init.scheme": "xavier_normal",
                             "data.limit": 100})
    assert trial.lr == 0.02 and trial.data.limit == 100 and trial.init.scheme == "xavier_normal"
    assert trial.model.options == {"dropout": 0.1, "hidden": [32]}
    assert trial.monitor == "val_f1" and trial.name is None      # the tuner registers, not the trial
    assert apply_params(base, {}) == base


# -- studies -----------------------------------------------------------------------------------
def test_study_beats_a_bad_base_lr_and_registers_each_improvement():
    base = ai.train(**QUICK, epochs=3, lr=1e-6)
    seen = []
    result = ai.tune(**QUICK, epochs=3, lr=1e-6, space=LOG_LR, metric="val_accuracy", trials=4,
                     name="tuned", progress=seen.append)
    assert result.best_value > base.metrics["val_accuracy"] + 0.4
    assert 1e-3 <= result.best_params["lr"] <= 1e-1
    assert [t["number"] for t in seen] == [0, 1, 2, 3] and len(result.trials) == 4
    assert result.study == "digits-mlp" and result.direction == "maximize"
    # One version per improvement; @best is the winner, trained with the winning lr.
    improvements = _improvements(result.trials, maximize=True)
    assert len(ai.models("tuned")) == improvements >= 1
    best = ai.model("tuned@best")
    assert best.ref == result.model
    assert best.spec["lr"] == pytest.approx(result.best_params["lr"])
    assert best.metrics["val_accuracy"] == pytest.approx(result.best_value)
    assert "tuned" in repr(result) and "<table" in result._repr_html_()
    assert ai.TuneResult.from_dict(result.to_dict()) == result


def _improvements(trials: list, maximize: bool) -> int:
    count, best = 0, None
    for t in trials:
        if t["state"] == "COMPLETE" and (best is None or (t["value"] > best if maximize else t["value"] < best)):
            count, best = count + 1, t["value"]
    return count


def test_pruning_stops_hopeless_trials_early():
    result = ai.tune(**QUICK, epochs=4, space={"lr": [1e-7, 1e-2]}, metric="val_accuracy", trials=6)
    pruned = [t for t in result.trials if t["state"] == "PRUNED"]
    assert pruned, result
    assert all(t["epochs"] < 4 for t in pruned)
    assert all(t["epochs"] == 4 for t in result.trials if t["state"] == "COMPLETE")
    assert result.best_params == {"lr": 1e-2}


def test_the_session_keeps_no_trial_runs_in_memory():
    import gc
    import weakref

    from nbaimaas.session import current

    backend = current().backend
    kept_before = len(backend.runs())
    refs = []
    start = backend.start_training

    def watched(*args, **kwargs):         # a weak reference to each trial's run, nothing more
        run = start(*args, **kwargs)
        refs.append(weakref.ref(run))
        return run

    backend.start_training = watched
    try:
        result = ai.tune(**QUICK, epochs=1, space={"lr": [1e-3, 1e-2, 3e-2]}, trials=3)
    finally:
        del backend.start_training
    gc.collect()
    assert len(backend.runs()) == kept_before and len(refs) == 3
    assert all(ref() is None for ref in refs)           # their data and models were freed
    assert len(result.trials) == 3


def test_a_diverging_trial_fails_and_the_study_goes_on():
    result = ai.tune(**QUICK, epochs=2, optimizer="sgd", space={"lr": [1e6, 1e-2]}, trials=3)
    states = {t["params"]["lr"]: t["state"] for t in result.trials}
    assert states == {1e6: "FAIL", 1e-2: "COMPLETE"} and result.best_params == {"lr": 1e-2}


def test_a_metric_the_runs_do_not_report_is_a_user_error():
    with pytest.raises(UserError, match="val_rmse"):
        ai.tune(**QUICK, epochs=1, space=LOG_LR, metric="val_rmse", trials=1)


def _worker(db: str, home: str) -> None:
    from nbaimaas import cli

    sys.exit(cli.main(["tune", "--spec", str(home) + "/tune.json", "--storage", db,
                       "--study", "shared", "--store", home]))


def test_two_processes_share_one_sqlite_study(tmp_path, capfd):
    spec = TuneSpec(base=ai.train_spec(**QUICK, epochs=2)[0], space=LOG_LR, trials=2)
    (tmp_path / "tune.json").write_text(spec.to_json())
    db = f"sqlite:///{tmp_path}/study.db"
    ctx = multiprocessing.get_context("fork")   # the parent has torch imported: no start-up cost
    workers = [ctx.Process(target=_worker, args=(db, str(tmp_path))) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert [w.exitcode for w in workers] == [0, 0], capfd.readouterr()
    trials = optuna.load_study(study_name="shared", storage=db).trials
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert {t.state.name for t in trials} <= {"COMPLETE", "PRUNED"}
    out = capfd.readouterr().out
    assert out.count("best of study shared") == 2 and out.count("trial ") == 4


def test_tuning_needs_the_local_backend_and_optuna(monkeypatch):
    from nbaimaas.backends.client import ServiceClient   # not at import: it would load httpx for all

    client = ServiceClient("http://127.0.0.1:9", token="t")
    with pytest.raises(UserError, match="connect local first"):
        client.tune(TuneSpec(space=LOG_LR))
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(UserError, match="tuning needs optuna"):
        ai.tune(space=LOG_LR)


def test_ctrl_c_ends_the_study_with_the_trials_so_far():
    def interrupt(trial):
        raise KeyboardInterrupt

    result = ai.tune(**QUICK, epochs=1, space=LOG_LR, trials=5, progress=interrupt)
    assert len(result.trials) == 1 and result.message.startswith("was interrupted")
    assert result.best_params and result.best_value is not None
