"""The ``nbaimaas`` command: ``nbaimaas serve [--host 127.0.0.1] [--port 8765] [--store DIR]``,
``nbaimaas train --spec train.json [--nproc N]`` and
``nbaimaas tune --spec tune.json [--trials N] [--storage URL] [--study NAME]``.

Subcommands live in ``COMMANDS`` (name -> (add arguments, run)), so a new one is one function
pair and one table entry.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

__all__ = ["main", "COMMANDS"]


def _serve_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port (0: any free port)")
    p.add_argument("--store", default=None, help="the store folder (default $NBAIMAAS_HOME or ~/.nbaimaas)")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow binding a non-loopback address (the token is still required)")
    p.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                   help="a Host header to accept besides loopback names (repeatable; '*' for any)")
    p.add_argument("--max-body", type=float, default=64, metavar="MB", help="request body limit in MB")
    p.add_argument("--rate-limit", type=float, default=None, metavar="N",
                   help="requests a second allowed per token (429 beyond; default: no limit)")


def _serve(args: argparse.Namespace) -> int:
    from .service.launch import is_loopback, run_server

    if not is_loopback(args.host) and not args.allow_remote:
        print(f"nbaimaas serve: error: binding {args.host} exposes the service beyond this machine; "
              "pass --allow-remote to do it on purpose", file=sys.stderr)
        return 2
    run_server(args.store, args.host, args.port, set(args.allowed_host), int(args.max_body * 2**20),
               args.rate_limit)
    return 0


def _tune_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--spec", required=True, metavar="FILE",
                   help="a TuneSpec as JSON: {\"base\": {TrainSpec}, \"space\": {...}, \"metric\": ...}")
    p.add_argument("--trials", type=int, help="trials this process runs (default: the spec's)")
    p.add_argument("--storage", metavar="URL",
                   help="Optuna storage shared by every worker, e.g. sqlite:///study.db")
    p.add_argument("--study", metavar="NAME", help="study name in the storage (default <data>-<arch>)")
    p.add_argument("--store", default=None, help="the model store (default $NBAIMAAS_HOME or ~/.nbaimaas)")


def _tune(args: argparse.Namespace) -> int:
    """Run trials in this process; start several with one --storage and --study to share a study."""
    from pathlib import Path

    from . import api
    from .errors import NbaimaasError
    from .results import TuneResult
    from .specs import TuneSpec

    try:
        spec = TuneSpec.from_json(Path(args.spec).read_text())
        given = {k: getattr(args, k) for k in ("trials", "storage", "study")}
        spec = spec.replace(**{k: v for k, v in given.items() if v is not None})
        api.connect("local", home=args.store)
        result = api.tune(spec, progress=lambda t: print(TuneResult.line(t, spec.metric), flush=True))
    except (NbaimaasError, OSError) as e:
        print(f"nbaimaas tune: error: {e}", file=sys.stderr)
        return 2
    best = ", ".join(f"{k}={v!r}" for k, v in sorted(result.best_params.items())) or "(no finished trial)"
    model = f"; model {result.model}" if result.model else ""
    print(f"best of study {result.study} ({len(result.trials)} trials): "
          f"{spec.metric}={result.best_value} with {best}{model}")
    return 0


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--spec", required=True, metavar="FILE",
                   help="a TrainSpec as JSON: {\"data\": {...}, \"model\": {...}, \"epochs\": ...}")
    p.add_argument("--nproc", type=int, metavar="N",
                   help="processes on this machine (default: the spec's); > 1 trains with torchrun + DDP")
    p.add_argument("--store", default=None, help="the model store (default $NBAIMAAS_HOME or ~/.nbaimaas)")


def _train(args: argparse.Namespace) -> int:
    """Train here (or on --nproc processes of this machine), one line an epoch; Ctrl-C stops."""
    from pathlib import Path

    from . import api
    from .errors import NbaimaasError
    from .events import EpochEnded
    from .specs import TrainSpec

    def show(event) -> None:
        if isinstance(event, EpochEnded):
            shown = "  ".join(f"{k}={v:.4g}" for k, v in event.metrics.items())
            print(f"epoch {event.epoch}/{spec.epochs}  {shown}  ({event.seconds:.2f} s)"
                  + ("  best" if event.best else ""), flush=True)

    try:
        spec = TrainSpec.from_json(Path(args.spec).read_text())
        if args.nproc is not None:
            spec = spec.replace(nproc=args.nproc)
        api.connect("local", home=args.store)
        result = api.train(spec, progress=show)
    except (NbaimaasError, OSError) as e:
        print(f"nbaimaas train: error: {e}", file=sys.stderr)
        return 2
    model = f"; model {result.model}" if result.model else ""
    print(f"run {result.run_id} {result.status} after {result.epochs_run} epochs "
          f"(best epoch {result.best_epoch}){model}" + (f": {result.message}" if result.message else ""))
    return 0


#: name -> (help, add_arguments, run)
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "serve": ("run the model service (FastAPI under uvicorn)", _serve_args, _serve),
    "train": ("train a model from a TrainSpec, here or on several processes (torchrun + DDP)",
              _train_args, _train),
    "tune": ("run hyperparameter trials here, on a study that other workers may share", _tune_args, _tune),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nbaimaas", description="AI models as a service, in the notebook")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, add_args, run) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_args(p)
        p.set_defaults(run=run)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
