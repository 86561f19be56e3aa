"""``%load_ext nbaimaas``: the seven steps as magics.

Every magic is thin: parse (IPython ``magic_arguments``) -> build keywords -> call
``nbaimaas.api`` -> draw the picture -> return the result object, so ``_`` and ``-o VAR`` work and
the result's own table is the cell's ``Out``. User mistakes become a one-line ``UsageError``;
bugs keep their traceback. No torch here: everything comes back as numpy or plain Python.
"""

from __future__ import annotations

import shlex
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from .. import api
from . import _render as render
from ._magic_args import (
    data_flags, data_kwargs, lookup, model_ref, resolve_data, resolve_model, train_flags, train_kwargs,
    tune_flags, tune_kwargs, user_errors,
)
from .live import LiveView

__all__ = ["AimaasMagics", "load_ipython_extension", "unload_ipython_extension", "stopped_line"]

_HELP = ("-h", "--help")


def _out(func):
    """``-o VAR``: store the result in the notebook under VAR as well as returning it."""
    return argument("-o", "--output", dest="output", metavar="VAR",
                    help="also store the result in this variable")(func)


def stopped_line(result: Any) -> str:
    """What a stopped run kept, in one line."""
    if not result.best_epoch:
        return f"Stopped run {result.run_id} before an epoch finished; nothing was kept."
    line = (f"Stopped run {result.run_id} after {result.epochs_run} epochs; kept the best checkpoint "
            f"(epoch {result.best_epoch}) in {result.checkpoint}")
    return line + (f", registered as {result.model}." if result.model else ".")


@magics_class
class AimaasMagics(Magics):
    # -- plumbing ---------------------------------------------------------------------------------
    @property
    def ns(self) -> dict:
        return self.shell.user_ns

    def _parse(self, func, line: str):
        """Parsed flags, or None after printing the help (``--help`` / ``-h``)."""
        try:
            words = shlex.split(line)
        except ValueError:
            words = line.split()
        if any(w in _HELP for w in words):
            print(func.__doc__)
            return None
        return parse_argstring(func, line)

    def _store(self, args: Any, result: Any) -> Any:
        if getattr(args, "output", None):
            self.ns[args.output] = result
        return result

    def _follow(self, run: Any) -> Any:
        """Show a run live until it ends; Ctrl-C stops it at a batch boundary (api.watch)."""
        view = LiveView()
        with user_errors():
            result = api.watch(run, view.update)
        if result.status == "stopped":
            print(stopped_line(result))
        return result

    def _run(self, token: str) -> Any:
        value = self.ns.get(token) if token.isidentifier() else None
        if value is not None and hasattr(value, "events") and hasattr(value, "stop"):
            return value
        with user_errors():
            return api.get_run(token)

    # -- 1. data ----------------------------------------------------------------------------------
    @magic_arguments()
    @argument("data", metavar="NAME_OR_VAR", help="built-in dataset, path, variable, or X,y")
    @data_flags
    @_out
    @line_magic
    def aimaas_data(self, line: str = ""):
        """Describe data: task, shapes, classes and counts, missing values, and a picture.

        Python: ai.describe(data="digits", target=None, limit=None)
        """
        args = self._parse(self.aimaas_data, line)
        if args is None:
            return None
        data = resolve_data(self.ns, args.data)
        with user_errors():
            summary = render.DataSummary(api.describe(data, **data_kwargs(args)))
        render.show_data(summary)
        return self._store(args, summary)

    # -- 2. models --------------------------------------------------------------------------------
    @magic_arguments()
    @argument("--model", default="mlp", help="architecture name or an nn.Module variable")
    @argument("--data", default="digits", help="the data the model is sized to")
    @data_flags
    @_out
    @line_magic
    def aimaas_summary(self, line: str = ""):
        """A model's layers, output shapes and parameter counts, sized to the data.

        Python: ai.summary(model="mlp", data="digits")
        """
        args = self._parse(self.aimaas_summary, line)
        if args is None:
            return None
        with user_errors():
            result = api.summary(resolve_model(self.ns, args.model), resolve_data(self.ns, args.data),
                                 **data_kwargs(args))
        return self._store(args, result)

    # -- 3-6. training ----------------------------------------------------------------------------
    @magic_arguments()
    @train_flags
    @argument("--background", action="store_true", help="return the Run at once (store it with -o)")
    @_out
    @line_cell_magic
    def aimaas_train(self, line: str = "", cell: str | None = None):
        """Train a model, showing progress and live learning curves; blocks until it ends.

        The cell form takes a TrainSpec in TOML (or YAML): top-level fields, [data], [model]
        (arch, options, [[model.layers]]) and [init] tables; flags on the magic's line override
        it. Ctrl-C stops at a batch boundary and keeps the best checkpoint.

        Python: ai.train(data="digits", model="mlp", epochs=10, lr=1e-3, name="digits-mlp")
        """
        args = self._parse(self.aimaas_train, line)
        if args is None:
            return None
        kw = train_kwargs(args, self.ns, cell)
        with user_errors():
            run = api.start_training(**kw)
        if args.background:
            print(f"Started run {run.id} in the background: %aimaas_attach {run.id} to watch it, "
                  f"%aimaas_stop {run.id} to stop it.")
            return self._store(args, run)
        return self._store(args, self._follow(run))

    @magic_arguments()
    @train_flags
    @_out
    @line_cell_magic
    def aimaas_lr_find(self, line: str = "", cell: str | None = None):
        """The learning-rate range test: loss against learning rate, with a suggested rate.

        Python: ai.lr_find(data="digits", model="mlp")
        """
        args = self._parse(self.aimaas_lr_find, line)
        if args is None:
            return None
        kw = train_kwargs(args, self.ns, cell)
        with user_errors():
            finding = render.LRFind(api.lr_find(**kw))
        render.show_lr_find(finding)
        return self._store(args, finding)

    @magic_arguments()
    @tune_flags
    @_out
    @line_cell_magic
    def aimaas_tune(self, line: str = "", cell: str | None = None):
        """Search hyperparameters with Optuna: one training run per trial, hopeless trials pruned.

        --space is a JSON object of TrainSpec field paths: a list is a set of choices,
        {"low": a, "high": b, "log": true} a float range, {"low": a, "high": b, "int": true} an
        integer range. The cell form takes a TrainSpec as %%aimaas_train does, plus trials,
        metric, direction, storage, study and a [space] table (lr = {low = 1e-4, high = 0.1,
        log = true}); flags on the magic's line override it. One line per finished trial, then
        the trials plotted and the table. With --name each improvement is registered (NAME@best
        is the winner); --storage sqlite:///study.db --study NAME shares the study with other
        workers (nbaimaas tune). Ctrl-C stops the running trial and keeps the study so far.

        Python: ai.tune(data="digits", model="mlp", space={"lr": {"low": 1e-4, "high": 0.1, "log": True}}, trials=10)
        """
        args = self._parse(self.aimaas_tune, line)
        if args is None:
            return None
        kw = tune_kwargs(args, self.ns, cell)
        with user_errors():
            result = api.tune(progress=render.trial_printer(kw.get("metric", "val_loss")), **kw)
        render.show_tuning(result)
        return self._store(args, result)

    @magic_arguments()
    @argument("run", metavar="RUN", help="run id or a variable holding a Run")
    @_out
    @line_magic
    def aimaas_attach(self, line: str = ""):
        """Show a background run live again until it ends (Ctrl-C stops it).

        Python: ai.watch(ai.get_run("run-..."), progress=...)
        """
        args = self._parse(self.aimaas_attach, line)
        if args is None:
            return None
        return self._store(args, self._follow(self._run(args.run)))

    @magic_arguments()
    @argument("run", metavar="RUN", help="run id or a variable holding a Run")
    @argument("--timeout", type=float, default=120.0, help="seconds to wait for it to stop")
    @_out
    @line_magic
    def aimaas_stop(self, line: str = ""):
        """Stop a background run at a batch boundary, keeping its best checkpoint.

        Python: ai.get_run("run-...").stop()
        """
        args = self._parse(self.aimaas_stop, line)
        if args is None:
            return None
        run = self._run(args.run)
        run.stop()
        with user_errors():
            try:
                result = run.wait(args.timeout)
            except TimeoutError:
                raise UsageError(f"run {run.id} is still stopping after {args.timeout:g} s; "
                                 f"%aimaas_attach {run.id} to follow it") from None
        print(stopped_line(result) if result.status == "stopped" else
              f"Run {result.run_id} had already ended: {result.status}.")
        return self._store(args, result)

    # -- 5. validate ------------------------------------------------------------------------------
    @magic_arguments()
    @argument("model", metavar="MODEL", help="registered model (name, name:version, name@alias)")
    @argument("--data", help="other data to evaluate on (name, path, variable or X,y)")
    @argument("--split", default="test", help="train, val or test")
    @data_flags
    @_out
    @line_magic
    def aimaas_eval(self, line: str = ""):
        """Metrics of a registered model, with a confusion matrix or a residual/forecast plot.

        Python: ai.evaluate("digits-mlp", data=None, split="test")
        """
        args = self._parse(self.aimaas_eval, line)
        if args is None:
            return None
        ref, data = model_ref(self.ns, args.model), resolve_data(self.ns, args.data)
        with user_errors():
            result = api.evaluate(ref, data, args.split, **data_kwargs(args))
            render.show_eval(result, data)
        return self._store(args, result)

    # -- 7. apply ---------------------------------------------------------------------------------
    @magic_arguments()
    @argument("model", metavar="MODEL", help="registered model (name, name:version, name@alias)")
    @argument("inputs", metavar="INPUT_VAR", help="variable holding images, rows, texts or a series")
    @argument("--top", type=int, default=1, help="the K most likely classes per input")
    @argument("--horizon", type=int, help="forecasts: steps ahead")
    @_out
    @line_magic
    def aimaas_predict(self, line: str = ""):
        """Predict with a registered model: raw inputs in, labels and probabilities (or values) out.

        Python: ai.predict("digits-mlp", images, top_k=1, horizon=None)
        """
        args = self._parse(self.aimaas_predict, line)
        if args is None:
            return None
        ref, inputs = model_ref(self.ns, args.model), lookup(self.ns, args.inputs)
        with user_errors():
            pred = api.predict(ref, inputs, top_k=args.top, horizon=args.horizon)
        render.show_prediction(pred, inputs)
        return self._store(args, pred)

    # -- the registry and the backend -------------------------------------------------------------
    @magic_arguments()
    @argument("name", metavar="NAME", nargs="?", help="only the versions of this model")
    @_out
    @line_magic
    def aimaas_models(self, line: str = ""):
        """The registry: every model version with its aliases, task, metrics and date.

        Python: ai.models(name=None)
        """
        args = self._parse(self.aimaas_models, line)
        if args is None:
            return None
        with user_errors():
            return self._store(args, api.models(args.name))

    @magic_arguments()
    @argument("target", metavar="local|URL", nargs="?", default="local")
    @argument("--token", help="bearer token of the model service")
    @argument("--home", help="store folder of the local backend")
    @line_magic
    def aimaas_connect(self, line: str = ""):
        """Choose the backend: the engine in this kernel ("local") or a model service URL.

        Python: ai.connect("local") or ai.connect("http://127.0.0.1:8765", token="...")
        """
        args = self._parse(self.aimaas_connect, line)
        if args is None:
            return None
        with user_errors():
            backend = api.connect(args.target, token=args.token, home=args.home)
        print(f"Connected: {backend!r}")
        return backend

    @magic_arguments()
    @argument("--home", help="store folder the service uses (default: NBAIMAAS_HOME)")
    @argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free port)")
    @_out
    @line_magic
    def aimaas_serve(self, line: str = ""):
        """Start a model service on 127.0.0.1 as a child process and connect to it.

        Every magic then runs against the service; %aimaas_connect local switches back.
        Python: served = ai.serve(home=None, port=0); served.stop()
        """
        args = self._parse(self.aimaas_serve, line)
        if args is None:
            return None
        with user_errors():
            served = api.serve(args.home, args.port)
        print(f"Serving at {served.url}; connected.")
        return self._store(args, served)


def load_ipython_extension(ipython) -> None:
    ipython.register_magics(AimaasMagics)


def unload_ipython_extension(ipython) -> None:
    # IPython has no unregister; drop our names from the magics table.
    table = ipython.magics_manager.magics
    for kind in ("line", "cell"):
        for name in [n for n in table[kind] if n.startswith("aimaas_")]:
            del table[kind][name]
