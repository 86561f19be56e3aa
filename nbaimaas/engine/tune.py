"""Step 6, optimise: a hyperparameter search on Optuna, one training run per trial.

A trial picks values from ``TuneSpec.space``, starts an ordinary run of ``spec.trial_spec(params)``
through ``start`` (so it trains exactly like ``ai.train``), reads its ``EpochEnded`` events and
reports the tuned metric to Optuna after every epoch. When the pruner says the trial is hopeless
the tuner calls ``run.stop()``: pruning is an engine callback that *controls* training, the events
themselves are only observed.

Several processes or machines can work on one study: give them the same ``storage`` URL (an
Optuna RDB such as ``sqlite:///study.db``) and ``study`` name, e.g. ``nbaimaas tune --spec
tune.json --storage sqlite:///study.db --study digits`` in several terminals. Each runs
``spec.trials`` trials; Optuna's storage hands out trial numbers and shares what every trial
learned, so the sampler of each worker sees the others' results.

Registration: trials train with ``name=None``; when a finished trial beats the study's best so far
(the best of every worker) and the base spec has a ``name``, its best-epoch weights are registered
under that name. The registry thus gets one version per improvement, and ``NAME@best``, which
follows the tuned metric (trials monitor it), ends on the winner without training it again.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from ..errors import SpecError, TrainingError
from ..events import EpochEnded
from ..results import TuneResult
from ..specs import TrainSpec, TuneSpec
from .checkpoint import cpu_state
from .runs import register_model

__all__ = ["run_study", "create_study", "study_name", "register_run"]

_SCALARS = (type(None), bool, int, float, str)     # what Optuna stores as a categorical choice
_POLL_S = 0.1


def study_name(spec: TuneSpec) -> str:
    """The study's name: ``spec.study``, or ``<data>-<arch>`` (so workers agree without being told)."""
    return spec.study or f"{Path(spec.base.data.name).stem}-{spec.base.model.arch}"


def create_study(spec: TuneSpec) -> optuna.Study:
    """Create the study, or join it when ``spec.storage`` already holds one of that name."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Workers sharing a study must not all draw the same "random" first trials, so only a study of
    # this process alone is seeded (and then reproducible).
    seed = spec.base.seed if spec.storage is None else None
    return optuna.create_study(
        storage=_storage(spec.storage), study_name=study_name(spec), load_if_exists=True,
        direction=spec.direction, sampler=optuna.samplers.TPESampler(seed=seed),
        # Notebook studies are small: prune once two trials have finished, after one epoch.
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1))


def _storage(url: str | None) -> Any:
    if url is None or not url.startswith("sqlite"):
        return url
    # Several processes write one SQLite file: wait for its lock instead of failing at once.
    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
        except Exception:  # noqa: BLE001 - two workers creating the tables at once; the loser retries
            if attempt == 4:
                raise
            time.sleep(0.2 * (attempt + 1))
    return url


def register_run(run: Any, name: str) -> str:
    """Register a finished local run's best weights under ``name`` (the run trained unnamed)."""
    job = dataclasses.replace(run.job, spec=run.job.spec.replace(name=name))
    # The run loaded its best epoch's weights into the model when it finished.
    return str(register_model(job, cpu_state(job.model), run.result().metrics))


def run_study(spec: TuneSpec, start: Callable[[TrainSpec], Any], progress: Callable | None = None,
              register: Callable[[Any, str], str] = register_run) -> TuneResult:
    """Run ``spec.trials`` trials of ``spec``'s study; ``progress`` gets each finished trial's dict.

    Ctrl-C stops the running trial at a batch boundary and returns what the study has so far.
    """
    study = create_study(spec)
    objective = _Objective(spec, start, register)
    callbacks = [lambda s, t: progress(trial_dict(t, spec.space))] if progress else []
    try:
        study.optimize(objective, n_trials=spec.trials, callbacks=callbacks, gc_after_trial=False)
    except KeyboardInterrupt:
        objective.interrupted = True
    message = "was interrupted: the running trial was stopped" if objective.interrupted else ""
    return study_result(study, spec, message)


class _Objective:
    """One trial: suggest, train, report every epoch, prune, register an improvement."""

    def __init__(self, spec: TuneSpec, start: Callable, register: Callable):
        self.spec, self.start, self.register = spec, start, register
        self.interrupted = False

    def __call__(self, trial: optuna.Trial) -> float:
        params = {key: _suggest(trial, key, space) for key, space in self.spec.space.items()}
        trial_spec = self.spec.trial_spec(params)
        run = self.start(trial_spec)
        trial.set_user_attr("run_id", run.id)
        try:
            pruned = self._follow(trial, run, trial_spec.epochs)
        except KeyboardInterrupt:
            # Ctrl-C: the run stopped at a batch boundary. End the study after this trial, which
            # counts as pruned (cut short), so Optuna prints no traceback for it.
            self.interrupted = True
            trial.set_user_attr("epochs", _epochs_run(run))
            trial.study.stop()
            raise optuna.TrialPruned("interrupted") from None
        try:
            result = run.result()
        except TrainingError as e:
            # NaN loss or out of memory: this trial failed, the study goes on (Optuna marks a
            # NaN value FAIL); a user mistake (SpecError) would repeat, so that one propagates.
            trial.set_user_attr("error", str(e))
            return float("nan")
        finally:
            trial.set_user_attr("epochs", _epochs_run(run))
        if pruned:
            raise optuna.TrialPruned(f"pruned after epoch {result.epochs_run}")
        value = float(result.metrics[self.spec.metric])
        if self.spec.base.name and _beats_best(trial.study, value):
            trial.set_user_attr("model", self.register(run, self.spec.base.name))
        return value

    def _follow(self, trial: optuna.Trial, run: Any, epochs: int) -> bool:
        """Watch the run to its end; returns whether it was pruned. Ctrl-C stops it, then re-raises."""
        seen, pruned = -1, False
        try:
            while True:
                done = run.done                 # read first: events emitted before it are drained
                for event in run.events(seen, timeout=0 if done else _POLL_S):
                    seen = event.seq
                    if isinstance(event, EpochEnded) and not pruned:
                        pruned = self._report(trial, run, event, epochs)
                if done:
                    return pruned
        except KeyboardInterrupt:
            run.stop()
            run.wait()
            raise

    def _report(self, trial: optuna.Trial, run: Any, event: EpochEnded, epochs: int) -> bool:
        if self.spec.metric not in event.metrics:
            run.stop()
            run.wait()
            raise SpecError(f"runs of this spec report {', '.join(sorted(event.metrics))}, "
                            f"not '{self.spec.metric}'; tune one of those (metric=...)")
        trial.report(float(event.metrics[self.spec.metric]), event.epoch)
        # After the last epoch there is nothing left to save: the trial counts as complete.
        if event.epoch < epochs and trial.should_prune():
            run.stop()                          # at the next batch boundary; the trial is over
            return True
        return False


def _suggest(trial: optuna.Trial, key: str, space: Any) -> Any:
    if isinstance(space, list):
        if all(isinstance(c, _SCALARS) for c in space):
            return trial.suggest_categorical(key, space)
        # Lists (``hidden`` sizes) are not Optuna choices: choose among their JSON texts.
        return json.loads(trial.suggest_categorical(key, [json.dumps(c) for c in space]))
    log = bool(space.get("log", False))
    if space.get("int"):
        return trial.suggest_int(key, space["low"], space["high"], step=space.get("step", 1), log=log)
    return trial.suggest_float(key, space["low"], space["high"], step=space.get("step"), log=log)


def _decode(space: dict, params: dict) -> dict:
    """Optuna's stored params with list-valued choices turned back from their JSON text."""
    out = {}
    for key, value in params.items():
        choices = space.get(key)
        encoded = isinstance(choices, list) and not all(isinstance(c, _SCALARS) for c in choices)
        out[key] = json.loads(value) if encoded and isinstance(value, str) else value
    return out


def _epochs_run(run: Any) -> int:
    return sum(isinstance(e, EpochEnded) for e in run.events(-1))


def _beats_best(study: optuna.Study, value: float) -> bool:
    try:
        best = study.best_value         # over finished trials of every worker, not this one
    except ValueError:
        return True
    return value < best if study.direction == optuna.study.StudyDirection.MINIMIZE else value > best


def trial_dict(trial: optuna.trial.FrozenTrial, space: dict) -> dict:
    return {"number": trial.number, "state": trial.state.name, "value": trial.value,
            "params": _decode(space, trial.params), "epochs": trial.user_attrs.get("epochs", 0)}


def study_result(study: optuna.Study, spec: TuneSpec, message: str = "") -> TuneResult:
    trials = [trial_dict(t, spec.space) for t in study.trials]
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = study.best_trial if done else None
    return TuneResult(
        best_params=_decode(spec.space, best.params) if best else {},
        best_value=best.value if best else None, metric=spec.metric, direction=spec.direction,
        trials=trials, model=best.user_attrs.get("model") if best else None,
        study=study.study_name, message=message)

