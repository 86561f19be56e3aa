"""Value objects every step returns: returned (so ``_`` and ``-o NAME`` work), never only printed.

Each has ``to_dict`` / ``from_dict`` for the wire and ``_repr_html_`` for the notebook. numpy is the
richest type here; no torch, no IPython.
"""

from __future__ import annotations

import dataclasses
import html
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "TrainResult", "EvalResult", "Prediction", "ModelVersion", "DatasetInfo", "ArchInfo",
    "Listing", "ModelSummary", "html_table", "TuneResult",
]


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(_fmt(x) for x in v)
    return str(v)


def html_table(rows: list[dict], columns: list[str] | None = None, caption: str = "") -> str:
    """A small HTML table; the one renderer all results share."""
    columns = columns or (list(rows[0]) if rows else [])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c, '')))}</td>" for c in columns) + "</tr>"
        for r in rows
    )
    # A caption is as wide as its table by default, so a long one wraps in a column of words.
    cap = (f'<caption style="caption-side: top; text-align: left; white-space: nowrap">'
           f"{html.escape(caption)}</caption>" if caption else "")
    return f'<table class="nbaimaas-table">{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def text_table(rows: list[dict], columns: list[str] | None = None, caption: str = "") -> str:
    """The plain-text twin of ``html_table``, for terminals and saved notebooks."""
    columns = columns or (list(rows[0]) if rows else [])
    cells = [[_fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    line = lambda values: "  ".join(v.ljust(w) for v, w in zip(values, widths)).rstrip()  # noqa: E731
    body = [line(columns)] + [line(row) for row in cells] if rows else ["(none)"]
    return "\n".join(([caption] if caption else []) + body)


class _Value:
    def to_dict(self) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            out[f.name] = v.tolist() if isinstance(v, np.ndarray) else v
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        return cls(**data)


class Listing(list):
    """A list of value objects that renders as one table in a notebook."""

    def __init__(self, items=(), columns: list[str] | None = None, caption: str = ""):
        super().__init__(items)
        self.columns = columns
        self.caption = caption

    def _repr_html_(self) -> str:
        return html_table([x.row() for x in self], self.columns, self.caption)

    def __repr__(self) -> str:
        return text_table([x.row() for x in self], self.columns, self.caption)

    def names(self) -> list[str]:
        return [x.name for x in self]


@dataclass(frozen=True)
class DatasetInfo(_Value):
    name: str
    modality: str                      # image | tabular | series | text
    task: str                          # classification | regression | forecast
    samples: int
    input_shape: list
    classes: list = field(default_factory=list)
    description: str = ""

    def row(self) -> dict:
        return {"name": self.name, "modality": self.modality, "task": self.task,
                "samples": self.samples, "input": "x".join(map(str, self.input_shape)) or "-",
                "classes": len(self.classes) or "-", "description": self.description}


@dataclass(frozen=True)
class ArchInfo(_Value):
    name: str
    family: str                        # mlp | cnn | rnn | nlp | custom
    modalities: list
    tasks: list
    description: str = ""

    def row(self) -> dict:
        return {"name": self.name, "family": self.family, "modalities": ", ".join(self.modalities),
                "tasks": ", ".join(self.tasks), "description": self.description}


@dataclass(frozen=True)
class ModelVersion(_Value):
    name: str
    version: int
    aliases: list = field(default_factory=list)
    task: str = ""
    arch: str = ""
    metrics: dict = field(default_factory=dict)
    created: str = ""
    spec: dict = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def __str__(self) -> str:
        return self.ref

    def row(self) -> dict:
        shown = {k: v for k, v in self.metrics.items() if k.startswith(("val_", "test_"))}
        return {"name": self.name, "version": self.version, "aliases": ", ".join(self.aliases),
                "task": self.task, "arch": self.arch,
                "metrics": ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(shown.items())),
                "created": self.created}

    def _repr_html_(self) -> str:
        return html_table([self.row()])


@dataclass(frozen=True)
class TrainResult(_Value):
    run_id: str
    status: str                        # completed | stopped | failed
    metrics: dict                      # the best epoch's metrics (val_*), plus train_loss
    history: list                      # one dict of metrics per epoch, with "epoch" and "lr"
    model: str | None = None           # registry reference, e.g. "digits-cnn:1"
    best_epoch: int = 0
    epochs_run: int = 0
    checkpoint: str = ""               # folder holding best.pt / last.pt
    message: str = ""
    seconds: float = 0.0
    device: str = "cpu"
    spec: dict = field(default_factory=dict)

    def _repr_html_(self) -> str:
        rows = [{"": k, "value": v} for k, v in sorted(self.metrics.items())]
        cap = (f"run {self.run_id}: {self.status} after {self.epochs_run} epochs "
               f"(best epoch {self.best_epoch}); model {self.model or '(not registered)'}")
        return html_table(rows, ["", "value"], cap)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(self.metrics.items()))
        return f"TrainResult({self.status}, model={self.model}, best_epoch={self.best_epoch}, {shown})"


@dataclass(frozen=True)
class EvalResult(_Value):
    model: str
    split: str
    metrics: dict
    confusion: list | None = None      # rows: true class, columns: predicted class
    classes: list = field(default_factory=list)
    samples: int = 0
    task: str = ""

    def most_confused(self, k: int = 5) -> list[tuple[str, str, int]]:
        """The k (true, predicted, count) pairs the model mixes up most."""
        if not self.confusion:
            return []
        cm = np.asarray(self.confusion)
        pairs = [(self.classes[i], self.classes[j], int(cm[i, j]))
                 for i in range(len(cm)) for j in range(len(cm)) if i != j and cm[i, j]]
        return sorted(pairs, key=lambda p: -p[2])[:k]

    def _repr_html_(self) -> str:
        rows = [{"metric": k, "value": v} for k, v in sorted(self.metrics.items())]
        return html_table(rows, ["metric", "value"],
                          f"{self.model} on the {self.split} split ({self.samples} samples)")

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(self.metrics.items()))
        return f"EvalResult({self.model}, {self.split}, {shown})"


@dataclass(frozen=True)
class Prediction(_Value):
    """Labels and probabilities (classification) or values (regression, forecasts)."""

    model: str
    task: str
    labels: list | None = None                    # predicted class names, one per input
    probabilities: np.ndarray | None = None       # [N, classes]
    classes: list = field(default_factory=list)
    values: np.ndarray | None = None              # [N] regression, [N, horizon] forecasts

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Prediction":
        data = dict(data)
        for key in ("probabilities", "values"):
            if data.get(key) is not None:
                data[key] = np.asarray(data[key], dtype=np.float32)
        return cls(**data)

    def top(self, k: int = 3) -> list[list[tuple[str, float]]]:
        """For each input, the k most likely (class, probability) pairs."""
        if self.probabilities is None:
            raise ValueError("top() is for classification predictions")
        order = np.argsort(-self.probabilities, axis=1)[:, :k]
        return [[(self.classes[j], float(p[j])) for j in row] for row, p in zip(order, self.probabilities)]

    def __len__(self) -> int:
        return len(self.labels) if self.labels is not None else len(self.values)  # type: ignore[arg-type]

    def rows(self, k: int = 1) -> list[dict]:
        if self.labels is not None:
            return [{"#": i, "label": lab, "top": ", ".join(f"{c} {p:.2f}" for c, p in top)}
                    for i, (lab, top) in enumerate(zip(self.labels, self.top(k)))]
        vals = np.asarray(self.values)
        return [{"#": i, "value": [round(float(x), 4) for x in np.atleast_1d(v)]} for i, v in enumerate(vals)]

    def _repr_html_(self) -> str:
        return html_table(self.rows(3)[:50], caption=f"{self.model}: {len(self)} predictions")

    def __repr__(self) -> str:
        if self.labels is not None:
            return f"Prediction({self.model}, labels={self.labels[:10]}{'...' if len(self) > 10 else ''})"
        return f"Prediction({self.model}, values={np.round(np.asarray(self.values)[:5], 4).tolist()})"


@dataclass(frozen=True)
class ModelSummary(_Value):
    """Layer by layer: name, type, output shape per sample, parameters (like Keras' summary).

    ``rows``: ``{"layer", "type", "output", "params"}``; ``output`` is the shape of one sample
    (the batch dimension dropped) or None where the layer's forward is never called on its own.
    """

    rows: list
    total_params: int
    trainable_params: int

    @property
    def non_trainable_params(self) -> int:
        return self.total_params - self.trainable_params

    def _display_rows(self) -> list[dict]:
        return [{"layer": r["layer"], "type": r["type"],
                 "output": "-" if r["output"] is None else
                 "(" + ", ".join(["N", *map(str, r["output"])]) + ")",
                 "params": f"{r['params']:,}"} for r in self.rows]

    def _footer(self) -> str:
        return (f"{self.total_params:,} parameters ({self.trainable_params:,} trainable, "
                f"{self.non_trainable_params:,} frozen)")

    def _repr_html_(self) -> str:
        return html_table(self._display_rows(), ["layer", "type", "output", "params"],
                          self._footer())

    def __repr__(self) -> str:
        return text_table(self._display_rows(), ["layer", "type", "output", "params"]) + "\n" + self._footer()

    __str__ = __repr__


def _param(value: Any) -> str:
    # Lists keep their brackets: "hidden=[128, 64], lr=0.01" must not read as three parameters.
    return str(value) if isinstance(value, list) else _fmt(value)


def _trial_row(trial: dict) -> dict:
    params = ", ".join(f"{k}={_param(v)}" for k, v in sorted(trial.get("params", {}).items()))
    value = trial.get("value")
    return {"trial": trial.get("number"), "state": str(trial.get("state", "")).lower(),
            "value": "-" if value is None else value, "epochs": trial.get("epochs", 0), "params": params}


@dataclass(frozen=True)
class TuneResult(_Value):
    """A hyperparameter search: the best trial's parameters and value, and every trial.

    ``trials`` are dicts ``{"number", "state", "value", "params", "epochs"}`` in trial order, with
    state COMPLETE, PRUNED, FAIL or RUNNING (a trial another worker is still running). ``model``
    is the registry reference of the best trial when the base spec had a ``name``.
    """

    best_params: dict
    best_value: float | None
    metric: str
    direction: str                     # minimize | maximize
    trials: list
    model: str | None = None
    study: str = ""
    message: str = ""                  # e.g. why the search ended early

    def count(self, state: str) -> int:
        return sum(1 for t in self.trials if t.get("state") == state)

    @staticmethod
    def line(trial: dict, metric: str) -> str:
        """One finished trial as a line: ``trial 3  complete  val_loss=0.41  (4 epochs)  lr=0.01``."""
        row = _trial_row(trial)
        epochs = f"{row['epochs']} epoch" + "s" * (row["epochs"] != 1)
        return f"trial {row['trial']:<3} {row['state']:<8} {metric}={_fmt(row['value'])}  ({epochs})  {row['params']}"

    def _caption(self) -> str:
        best = "-" if self.best_value is None else _fmt(self.best_value)
        states = f"{self.count('COMPLETE')} complete, {self.count('PRUNED')} pruned"
        if self.count("FAIL"):
            states += f", {self.count('FAIL')} failed"
        return (f"study {self.study}: {len(self.trials)} trials ({states}); best {self.metric}={best} "
                f"({self.direction}); model {self.model or '(not registered)'}")

    def _rows(self) -> list[dict]:
        return [_trial_row(t) for t in self.trials]

    def _repr_html_(self) -> str:
        best = "".join(f"<li>{html.escape(k)} = {html.escape(_param(v))}</li>"
                       for k, v in sorted(self.best_params.items()))
        return (html_table(self._rows(), ["trial", "state", "value", "epochs", "params"], self._caption())
                + (f"<p>best parameters:</p><ul>{best}</ul>" if best else ""))

    def __repr__(self) -> str:
        best = _trial_row({"params": self.best_params})["params"]
        return (text_table(self._rows(), ["trial", "state", "value", "epochs", "params"], self._caption())
                + f"\nbest parameters: {best or '(none)'}")
