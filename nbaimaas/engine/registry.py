"""The model registry: trained model versions by name, embedded, nothing to start.

    <root>/registry.db                              SQLite (WAL): models, aliases, sequences
    <root>/models/<name>/<version>/weights.safetensors      the model's state_dict
                                  /preprocess.safetensors   the fitted preprocessor's tensors
                                  /model.json               spec, info, preprocessor meta, metrics

References: ``name`` (newest version), ``name:3``, ``name@best``. ``latest`` is an implicit alias
of the newest version and is never stored. ``best`` follows the monitored metric: a new version
takes it when ``metrics[metrics["monitor"]]`` beats the current best's value.

Crash safety: a version's files are written into ``models/<name>/.tmp-<uuid>``, fsynced, and
renamed to the version folder inside the same SQLite write transaction that allocates the
version number and inserts the row. A crash before the commit leaves a stray temp folder or an
orphan version folder with no row, never a row without files; stray temp folders are removed
when a registry is opened, and an orphan version folder is replaced when its number is reused.
Deleting removes rows first and files second, for the same reason.

Version numbers are never reused, even after a delete, so ``name:3`` always means the same
weights (a cached copy of ``name:3`` in a prediction service can never go stale).

Every call opens its own SQLite connection, so one Registry is safe to share between threads,
and several processes may use the same root at once (SQLite's locks serialise the writers).
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

from ..errors import ConflictError, NbaimaasError, NotFoundError, UserError
from ..names import NAME_PATTERN, check_model_name, parse_ref
from ..results import Listing, ModelVersion
from ..specs import lower_is_better
from .store import (
    atomic_write_text, clean_stale, fsync_dir, home, inside, load_tensors, read_json,
    remove_tree, save_tensors, to_json,
)

__all__ = ["Registry", "LoadedModel"]

SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 60.0             # writers queue behind each other; a register takes milliseconds
STALE_TEMP_S = 3600.0             # an unfinished write older than this is a crash's leftover
LATEST = "latest"
BEST = "best"
_ALIAS = re.compile(NAME_PATTERN)

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS models (
        name TEXT NOT NULL, version INTEGER NOT NULL, task TEXT NOT NULL, arch TEXT NOT NULL,
        metrics TEXT NOT NULL, spec TEXT NOT NULL, info TEXT NOT NULL, created TEXT NOT NULL,
        path TEXT NOT NULL, PRIMARY KEY (name, version))""",
    """CREATE TABLE IF NOT EXISTS aliases (
        name TEXT NOT NULL, alias TEXT NOT NULL, version INTEGER NOT NULL,
        PRIMARY KEY (name, alias),
        FOREIGN KEY (name, version) REFERENCES models (name, version) ON DELETE CASCADE)""",
    # The highest version ever issued per name, so deleting the newest never frees its number.
    "CREATE TABLE IF NOT EXISTS sequences (name TEXT PRIMARY KEY, last_version INTEGER NOT NULL)",
)



@dataclass
class LoadedModel:
    """Everything needed to rebuild a trained model and predict with it."""

    version: ModelVersion
    weights: dict[str, torch.Tensor]
    spec: dict
    info: dict
    preprocess_meta: dict
    preprocess_tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)

    @property
    def classes(self) -> list:
        return list(self.info.get("classes", []))


class Registry:
    """Trained model versions under ``root`` (default: the store home, see ``store.home``)."""

    def __init__(self, root: Path | str | None = None):
        self.root = home(root)
        self.db_path = self.root / "registry.db"
        self.models_dir = inside(self.root, "models")
        self.models_dir.mkdir(exist_ok=True)
        self.journal_mode = self._init_db()
        self._clean_leftovers()

    def __repr__(self) -> str:
        return f"Registry({str(self.root)!r})"

    # ---- writing ---------------------------------------------------------------------------

    def register(
        self,
        name: str,
        *,
        weights: dict[str, torch.Tensor],
        spec: dict | None = None,
        info: dict | None = None,
        preprocess_meta: dict | None = None,
        preprocess_tensors: dict[str, torch.Tensor] | None = None,
        metrics: dict | None = None,
    ) -> ModelVersion:
        """Store a new version of ``name`` (1 for a new name) and return it."""
        check_model_name(name)
        spec, info, metrics = dict(spec or {}), dict(info or {}), dict(metrics or {})
        task, arch = _task_and_arch(spec, info)
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        document = {
            "format": 1, "name": name, "created": created, "task": task, "arch": arch,
            "spec": spec, "info": info, "preprocess": dict(preprocess_meta or {}),
            "metrics": metrics, "classes": list(info.get("classes", [])),
        }
        row = (task, arch, to_json(metrics), to_json(spec), to_json(info), created)
        tmp = inside(self.models_dir, name, f".tmp-{uuid.uuid4().hex}")
        try:
            tmp.mkdir(parents=True)  # also makes models/<name>, which a delete may just remove
            save_tensors(tmp / "weights.safetensors", weights)
            save_tensors(tmp / "preprocess.safetensors", dict(preprocess_tensors or {}))
            atomic_write_text(tmp / "model.json", to_json(document))
            fsync_dir(tmp)
            return self._publish(name, tmp, row, metrics)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def _publish(self, name: str, tmp: Path, row: tuple, metrics: dict) -> ModelVersion:
        """Allocate the version, move the folder into place and insert the row, all or nothing."""
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")  # take the write lock now: no two get one version
            final = None
            try:
                version = _next_version(conn, name)
                target = inside(self.models_dir, name, str(version))
                if target.exists():  # an orphan from a crash between rename and commit
                    remove_tree(target)
                os.replace(tmp, target)
                final = target
                fsync_dir(target.parent)
                conn.execute("INSERT INTO models VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             (name, version, *row, f"models/{name}/{version}"))
                conn.execute(
                    "INSERT INTO sequences VALUES (?, ?) ON CONFLICT (name) "
                    "DO UPDATE SET last_version = excluded.last_version", (name, version))
                _update_best(conn, name, version, metrics)
                published = _model_version(conn, name, version)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if final is not None:
                    remove_tree(final)
                raise
        return published

    def set_alias(self, ref: str, alias: str) -> ModelVersion:
        """Point ``alias`` at the version ``ref`` names (moving it if it pointed elsewhere)."""
        _check_alias(alias)
        r = parse_ref(ref)
        with self._transaction(write=True) as conn:
            version = self._resolve_version(conn, r)
            conn.execute(
                "INSERT INTO aliases VALUES (?, ?, ?) ON CONFLICT (name, alias) "
                "DO UPDATE SET version = excluded.version", (r.name, alias, version))
            return _model_version(conn, r.name, version)

    def remove_alias(self, name: str, alias: str) -> None:
        check_model_name(name)
        _check_alias(alias)
        with self._transaction(write=True) as conn:
            gone = conn.execute("DELETE FROM aliases WHERE name = ? AND alias = ?", (name, alias))
            if gone.rowcount == 0:
                self._resolve_version(conn, parse_ref(f"{name}@{alias}"))  # raises the right error

    def delete(self, ref: str, *, all_versions: bool = False) -> list[ModelVersion]:
        """Delete one version (``name:3``, ``name@old``) or, with ``all_versions``, a whole name.

        Aliases pointing at a deleted version go with it; ``@best`` is not re-pointed at the
        next best version (it reappears when a better version is registered, or by set_alias).
        Returns what was deleted.
        """
        r = parse_ref(ref)
        with self._transaction(write=True) as conn:
            if r.version is None and r.alias is None:
                versions = self._versions(conn, r.name)
                if not all_versions:
                    raise UserError(
                        f"'{r.name}' means every version; delete '{r.name}:{versions[-1]}' for "
                        "one version, or pass all_versions=True to delete them all")
            else:
                versions = [self._resolve_version(conn, r)]
            deleted = [_model_version(conn, r.name, v) for v in versions]
            paths = [_row(conn, r.name, v)["path"] for v in versions]
            marks = ",".join("?" * len(versions))
            for table in ("aliases", "models"):
                conn.execute(f"DELETE FROM {table} WHERE name = ? AND version IN ({marks})",
                             (r.name, *versions))
        for path in paths:  # rows are gone: at worst a crash here leaves an orphan folder
            remove_tree(inside(self.root, path))
        try:
            inside(self.models_dir, r.name).rmdir()  # only succeeds once the name is empty
        except OSError:
            pass
        return deleted

    # ---- reading ---------------------------------------------------------------------------

    def resolve(self, ref: str) -> ModelVersion:
        """``name`` -> newest version, ``name:3``, ``name@alias``; NotFoundError otherwise."""
        r = parse_ref(ref)
        with self._transaction() as conn:
            return _model_version(conn, r.name, self._resolve_version(conn, r))

    def load(self, ref: str) -> LoadedModel:
        """Weights, spec, preprocessing and metrics of a version (safetensors + JSON only)."""
        r = parse_ref(ref)
        with self._transaction() as conn:
            version = self._resolve_version(conn, r)
            mv = _model_version(conn, r.name, version)
            folder = inside(self.root, _row(conn, r.name, version)["path"])
        try:
            document = read_json(folder / "model.json")
            weights, _ = load_tensors(folder / "weights.safetensors")
            pre_tensors, _ = load_tensors(folder / "preprocess.safetensors")
        except FileNotFoundError:
            raise NotFoundError(f"the files of {mv.ref} are gone (deleted meanwhile?)") from None
        return LoadedModel(mv, weights, document["spec"], document["info"],
                           document["preprocess"], pre_tensors, document["metrics"])

    def list(self, name: str | None = None) -> Listing:
        """Every version (of ``name``, or of every model), ordered by name then version."""
        with self._transaction() as conn:
            if name is not None:
                check_model_name(name)
                self._versions(conn, name)  # NotFoundError with a did-you-mean
            where, args = ("WHERE name = ?", (name,)) if name is not None else ("", ())
            rows = conn.execute(f"SELECT * FROM models {where} ORDER BY name, version", args)
            aliases = _alias_map(conn)
            items = [_from_row(row, aliases.get((row["name"], row["version"]), []))
                     for row in rows.fetchall()]
        return Listing(items, caption="registered models")

    def names(self) -> list[str]:
        with self._transaction() as conn:
            return _names(conn)

    # ---- internals -------------------------------------------------------------------------

    def _resolve_version(self, conn: sqlite3.Connection, r) -> int:
        versions = self._versions(conn, r.name)
        if r.version is not None:
            if r.version not in versions:
                raise NotFoundError(f"{r.name} has no version {r.version}; "
                                    f"versions: {', '.join(map(str, versions))}")
            return r.version
        if r.alias is None or r.alias == LATEST:
            return versions[-1]
        found = conn.execute("SELECT version FROM aliases WHERE name = ? AND alias = ?",
                             (r.name, r.alias)).fetchone()
        if found is None:
            known = [a for (a,) in conn.execute(
                "SELECT alias FROM aliases WHERE name = ? ORDER BY alias", (r.name,))]
            shown = f"aliases: {', '.join(known)}" if known else "it has no aliases yet"
            raise NotFoundError(f"{r.name} has no alias '{r.alias}'; {shown}")
        return found[0]

    def _versions(self, conn: sqlite3.Connection, name: str) -> list[int]:
        versions = [v for (v,) in conn.execute(
            "SELECT version FROM models WHERE name = ? ORDER BY version", (name,))]
        if not versions:
            raise _no_model(name, _names(conn))
        return versions

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # One connection per call: sqlite3 connections must not cross threads, and short-lived
        # connections never hold a lock (or a stale WAL snapshot) between calls.
        conn = sqlite3.connect(self.db_path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            yield conn
        finally:
            conn.close()

    @contextmanager
    def _transaction(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """One transaction: reads see one snapshot; writes take the lock up front."""
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:  # SQLite may already have rolled back (disk full)
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _init_db(self) -> str:
        with self._connect() as conn:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            conn.execute("BEGIN IMMEDIATE")
            try:
                stored = conn.execute("PRAGMA user_version").fetchone()[0]
                if stored > SCHEMA_VERSION:
                    raise NbaimaasError(
                        f"the registry at {self.root} was written by a newer nbaimaas "
                        f"(schema {stored} > {SCHEMA_VERSION})", "upgrade nbaimaas")
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        return mode

    def _clean_leftovers(self) -> None:
        """Remove crashed writers' temp folders (older than an hour) and half-deleted ones."""
        for folder in self.models_dir.iterdir():
            if folder.is_dir():
                clean_stale(folder, STALE_TEMP_S)


# ---- helpers over one connection -------------------------------------------------------------

def _next_version(conn: sqlite3.Connection, name: str) -> int:
    row = conn.execute(
        "SELECT MAX(v) FROM (SELECT MAX(version) AS v FROM models WHERE name = ? "
        "UNION ALL SELECT last_version FROM sequences WHERE name = ?)", (name, name)).fetchone()
    return (row[0] or 0) + 1


def _update_best(conn: sqlite3.Connection, name: str, version: int, metrics: dict) -> None:
    """Move ``best`` to ``version`` if its monitored metric strictly beats the current best's.

    When the current best has no finite value for this monitor (say the monitor changed), the
    two cannot be compared and the new version, which can, takes ``best``.
    """
    monitor = metrics.get("monitor")
    value = _finite(metrics.get(monitor)) if isinstance(monitor, str) else None
    if value is None:
        return
    current = conn.execute(
        "SELECT m.metrics FROM aliases a JOIN models m "
        "ON m.name = a.name AND m.version = a.version WHERE a.name = ? AND a.alias = ?",
        (name, BEST)).fetchone()
    if current is not None:
        old = _finite(json.loads(current[0]).get(monitor))
        if old is not None and not (value < old if lower_is_better(monitor) else value > old):
            return
    conn.execute("INSERT INTO aliases VALUES (?, ?, ?) ON CONFLICT (name, alias) "
                 "DO UPDATE SET version = excluded.version", (name, BEST, version))


def _row(conn: sqlite3.Connection, name: str, version: int) -> sqlite3.Row:
    return conn.execute("SELECT * FROM models WHERE name = ? AND version = ?",
                        (name, version)).fetchone()


def _model_version(conn: sqlite3.Connection, name: str, version: int) -> ModelVersion:
    aliases = [a for (a,) in conn.execute(
        "SELECT alias FROM aliases WHERE name = ? AND version = ? ORDER BY alias", (name, version))]
    return _from_row(_row(conn, name, version), aliases)


def _from_row(row: sqlite3.Row, aliases: list[str]) -> ModelVersion:
    return ModelVersion(name=row["name"], version=row["version"], aliases=list(aliases),
                        task=row["task"], arch=row["arch"], metrics=json.loads(row["metrics"]),
                        created=row["created"], spec=json.loads(row["spec"]))


def _alias_map(conn: sqlite3.Connection) -> dict[tuple[str, int], list[str]]:
    out: dict[tuple[str, int], list[str]] = {}
    for name, alias, version in conn.execute(
            "SELECT name, alias, version FROM aliases ORDER BY alias"):
        out.setdefault((name, version), []).append(alias)
    return out


def _names(conn: sqlite3.Connection) -> list[str]:
    return [n for (n,) in conn.execute("SELECT DISTINCT name FROM models ORDER BY name")]


def _no_model(name: str, known: list[str]) -> NotFoundError:
    """``no model named 'digitz' (did you mean 'digits'?); registered: digits, ...``"""
    if not known:
        return NotFoundError(f"no model named '{name}'; no models are registered yet")
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    guess = f" (did you mean '{close[0]}'?)" if close else ""
    shown = ", ".join(known[:20]) + (f", ... ({len(known)} in all)" if len(known) > 20 else "")
    return NotFoundError(f"no model named '{name}'{guess}; registered: {shown}")


# ---- plain helpers ---------------------------------------------------------------------------

def _check_alias(alias: str) -> None:
    if alias == LATEST:
        raise ConflictError("'latest' is reserved: it always means the newest version")
    if not isinstance(alias, str) or not _ALIAS.fullmatch(alias):
        raise UserError(f"invalid alias {alias!r}", "use 1-63 lowercase letters, digits, "
                        "'-' or '_', starting with a letter or digit")


def _task_and_arch(spec: dict, info: dict) -> tuple[str, str]:
    """The task comes from the data info, the architecture from a ModelSpec or a TrainSpec."""
    model = spec.get("model") if isinstance(spec.get("model"), dict) else {}
    arch = spec.get("arch") or model.get("arch") or ""
    task = info.get("task") or spec.get("task") or ""
    return str(task), str(arch)


def _finite(value) -> float | None:
    if isinstance(value, (bool, str)) or value is None:
        return None
    if not isinstance(value, (int, float)):
        try:
            value = float(value)  # numpy scalars and 0-d tensors
        except (TypeError, ValueError):
            return None
    value = float(value)
    return value if math.isfinite(value) else None

