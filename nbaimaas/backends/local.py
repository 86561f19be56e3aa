"""The in-process backend: the PyTorch engine running in the kernel, nothing to start.

torch and the engine are imported when this backend is first used, not when nbaimaas is imported,
so ``import nbaimaas`` and ``%load_ext nbaimaas`` stay fast.
"""

from __future__ import annotations

import copy
import threading
from pathlib import Path
from typing import Any

from ..errors import NotFoundError, UserError
from ..results import ArchInfo, DatasetInfo, EvalResult, ModelVersion, Prediction, TuneResult
from ..specs import DataSpec, InitSpec, ModelSpec, PredictRequest, TrainSpec, TuneSpec


class LocalBackend:
    name = "local"

    def __init__(self, home: str | Path | None = None):
        from ..engine.predict import ModelCache
        from ..engine.registry import Registry
        from ..engine.store import home as store_home

        self.home = store_home(home)
        self.registry = Registry(self.home)
        self.cache = ModelCache(self.registry)
        self._runs: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LocalBackend(home={str(self.home)!r})"

    # -- catalogs ---------------------------------------------------------------------------
    def datasets(self) -> list[DatasetInfo]:
        from ..engine.data import list_datasets

        return list_datasets()

    def architectures(self, task: str | None = None, modality: str | None = None) -> list[ArchInfo]:
        from ..engine.models import list_architectures

        return list_architectures(task=task, modality=modality)

    def describe_data(self, data: DataSpec, inline: Any = None) -> dict:
        from ..engine.data import describe

        return describe(data, inline)

    def sample(self, data: DataSpec, split: str = "test", n: int = 16, inline: Any = None) -> dict:
        """The first ``n`` raw test inputs and their true labels (for demos and panels)."""
        from ..engine.data import prepare

        if split != "test":
            raise UserError("only the test split keeps its raw inputs; use split='test'")
        prepared = prepare(data, inline)
        raw, y = prepared.raw_test, prepared.test.y[:n]
        labels = ([prepared.info.classes[int(i)] for i in y] if prepared.info.task == "classification"
                  else prepared.preprocessor.inverse_targets(y.float()).numpy())
        if prepared.info.modality == "series":
            return {"inputs": raw, "labels": labels, "info": prepared.info.to_dict()}
        return {"inputs": raw[:n], "labels": labels, "info": prepared.info.to_dict()}

    # -- building ---------------------------------------------------------------------------
    def _build(self, spec: TrainSpec, inline: Any, module: Any):
        """Prepare data and build + initialise the model; user mistakes surface here, at once."""
        from ..engine.data import prepare
        from ..engine.init import initialize
        from ..engine.models import create_model, wrap_module

        data = prepare(spec.data, inline)
        if module is not None:
            model = wrap_module(module, data.info)
            # A user's own module may arrive pretrained: re-initialise only when asked to.
            if spec.init != InitSpec():
                initialize(model, spec.init, spec.seed)
            return data, model
        model = create_model(spec.model, data.info)
        initialize(model, spec.init, spec.seed)
        return data, model

    def summary(self, model: ModelSpec, data: DataSpec, inline: Any = None, module: Any = None):
        from ..engine.models import summary

        data_p, net = self._build(TrainSpec(data=data, model=model), inline, module)
        return summary(net, data_p.info)

    # -- training ---------------------------------------------------------------------------
    def start_training(self, spec: TrainSpec, inline: Any = None, module: Any = None,
                       run_id: str | None = None):
        """Validate, build and start a run; ``run_id`` lets a service job and its run share a name.

        ``spec.nproc > 1`` trains on that many processes of this machine (torchrun + DDP); the
        returned ``DistributedRun`` is followed like any other run."""
        from ..engine.runs import new_run_id

        if spec.nproc > 1:
            from ..engine.distributed import check_portable

            check_portable(spec, inline, module)
            return self._launch_distributed(spec, run_id or new_run_id(), resume=False)
        if module is not None:
            spec = spec.replace(model=ModelSpec(arch="module", options={"class": type(module).__name__}))
        data, model = self._build(spec, inline, module)
        return self._launch(spec, data, model, run_id or new_run_id(), resume=False, module=module)

    def resume(self, run_id: str, inline: Any = None):
        """Continue a stopped, failed or interrupted run from its last checkpoint."""
        from ..engine.checkpoint import LAST

        run_dir = self._run_dir(run_id)
        if not (run_dir / LAST).exists():
            raise NotFoundError(f"run {run_id} has no checkpoint to resume from", "it stopped before epoch 1 ended")
        spec = TrainSpec.from_json((run_dir / "spec.json").read_text())
        if spec.model.arch == "module":
            raise UserError("runs of your own nn.Module cannot be resumed from disk; train it again")
        if spec.nproc > 1:
            return self._launch_distributed(spec, run_id, resume=True)
        data, model = self._build(spec, inline, None)
        return self._launch(spec, data, model, run_id, resume=True, module=None)

    def _launch(self, spec, data, model, run_id, resume, module):
        from ..engine.runs import Job, LocalRun

        def finished(run):
            ref = run.result().model if run.status != "failed" else None
            if module is not None and ref:
                self.cache.remember_module(ref, module)

        job = Job(spec, data, model, self._run_dir(run_id), self.registry, resume)
        run = LocalRun(job, run_id, on_finished=finished)
        with self._lock:
            self._runs[run_id] = run
        return run.start()

    def _launch_distributed(self, spec: TrainSpec, run_id: str, resume: bool):
        from ..engine.distributed import launch

        run = launch(spec, self._run_dir(run_id), self.home, run_id, resume)
        with self._lock:
            self._runs[run_id] = run
        return run

    def _run_dir(self, run_id: str) -> Path:
        from ..engine.store import inside

        return inside(self.home, "runs", run_id)

    def get_run(self, run_id: str):
        try:
            return self._runs[run_id]
        except KeyError:
            raise NotFoundError(f"no run '{run_id}' in this session",
                                f"runs: {', '.join(self._runs) or 'none yet'}") from None

    def runs(self) -> list:
        return list(self._runs.values())

    def _forget(self, run_ids: list[str]) -> None:
        """Let the session drop finished runs (whoever still holds one keeps it alive)."""
        with self._lock:
            for run_id in list(run_ids):
                run = self._runs.get(run_id)
                if run is None or run.done:
                    self._runs.pop(run_id, None)
                    run_ids.remove(run_id)

    def tune(self, spec: TuneSpec, inline: Any = None, module: Any = None, progress=None) -> TuneResult:
        """A hyperparameter search (``engine/tune.py``): one ordinary run of this backend per trial."""
        from ..engine.tune import run_study

        trial_runs: list[str] = []

        def start(trial_spec: TrainSpec):
            # A finished trial's run (its data and model) is not kept by the session: a long
            # study would otherwise hold every trial's in memory. Its weights, if better, are in
            # the registry already.
            self._forget(trial_runs)
            # Each trial trains its own copy: a user's module must start fresh every time.
            run = self.start_training(trial_spec, inline, copy.deepcopy(module))
            trial_runs.append(run.id)
            return run

        try:
            result = run_study(spec, start, progress)
        finally:
            self._forget(trial_runs)
        if module is not None and result.model:
            self.cache.remember_module(result.model, module)
        return result

    def lr_find(self, spec: TrainSpec, inline: Any = None, module: Any = None) -> dict:
        from ..engine.loop import pick_device
        from ..engine.metrics import make_loss
        from ..engine.optim import lr_find

        data, model = self._build(spec, inline, module)
        device = pick_device(spec.device)
        finding = lr_find(model.to(device), make_loss(data.info.task, spec.loss),
                          data.train.x.to(device), data.train.y.to(device), spec)
        return finding.to_dict()

    # -- validation and application ---------------------------------------------------------
    def evaluate(self, model: str, data: DataSpec | None = None, split: str = "test",
                 inline: Any = None) -> EvalResult:
        from ..engine.data import prepare
        from ..engine.predict import evaluate

        servable = self.cache.get(model)
        prepared = None
        if data is not None or inline is not None:
            # Same preparation settings as training, but on the data given here.
            prepared = prepare(_merge_data(servable.data_spec, data), inline)
        return evaluate(servable, prepared, split)

    def predict(self, request: PredictRequest, inputs: Any) -> Prediction:
        from ..engine.predict import predict

        return predict(self.cache.get(request.model), inputs, request.top_k, request.horizon)

    # -- the registry -----------------------------------------------------------------------
    def models(self, name: str | None = None) -> list[ModelVersion]:
        return self.registry.list(name)

    def model(self, ref: str) -> ModelVersion:
        return self.registry.resolve(ref)

    def set_alias(self, ref: str, alias: str) -> ModelVersion:
        return self.registry.set_alias(ref, alias)

    def delete(self, ref: str, all_versions: bool = False) -> None:
        self.registry.delete(ref, all_versions=all_versions)


def _merge_data(base: DataSpec, given: DataSpec | None) -> DataSpec:
    """The model's own preparation settings, overridden only where the caller chose otherwise."""
    if given is None:
        return base.replace(name="inline")
    defaults = DataSpec().to_dict()
    changed = {k: v for k, v in given.to_dict().items() if v != defaults[k] or k == "name"}
    return base.replace(**changed)
