"""The model registry: versions, aliases, @best, errors, crash safety and concurrency."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from nbaimaas.engine import registry as registry_module
from nbaimaas.engine.registry import Registry
from nbaimaas.specs import lower_is_better
from nbaimaas.errors import ConflictError, NotFoundError, UserError

SPEC = {"model": {"arch": "mlp", "hidden": [8]}, "lr": 0.01}
INFO = {"name": "digits", "task": "classification", "classes": ["0", "1"], "input_shape": [3]}


def register(reg: Registry, name: str = "digits-cnn", seed: int = 0, **metrics):
    torch.manual_seed(seed)
    weights = nn.Linear(3, 2).state_dict()
    metrics = metrics or {"monitor": "val_loss", "val_loss": 1.0 - seed / 10}
    return reg.register(
        name, weights=weights, spec=SPEC, info=INFO,
        preprocess_meta={"kind": "standardize", "features": 3},
        preprocess_tensors={"mean": torch.arange(3.0), "std": torch.ones(3)},
        metrics=metrics,
    )


@pytest.fixture
def reg(tmp_path) -> Registry:
    return Registry(tmp_path / "store")


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_register_load_round_trip(reg):
    torch.manual_seed(0)
    weights = nn.Linear(3, 2).state_dict()
    mv = register(reg, seed=0)
    assert (mv.name, mv.version, mv.task, mv.arch) == ("digits-cnn", 1, "classification", "mlp")
    assert mv.spec == SPEC and mv.aliases == ["best"] and mv.created.endswith("+00:00")
    loaded = reg.load("digits-cnn")
    assert loaded.version == mv
    assert all(torch.equal(loaded.weights[k], weights[k]) for k in weights)
    assert loaded.weights.keys() == weights.keys()
    assert torch.equal(loaded.preprocess_tensors["mean"], torch.arange(3.0))
    assert (loaded.spec, loaded.info) == (SPEC, INFO)
    assert loaded.preprocess_meta == {"kind": "standardize", "features": 3}
    assert loaded.metrics == {"monitor": "val_loss", "val_loss": 1.0}
    assert loaded.classes == ["0", "1"]
    folder = reg.root / "models" / "digits-cnn" / "1"
    assert sorted(os.listdir(folder)) == ["model.json", "preprocess.safetensors", "weights.safetensors"]


def test_minimal_register_with_numpy_metrics(reg):
    np = pytest.importorskip("numpy")
    mv = reg.register("bare", weights={"w": torch.ones(2)},
                      metrics={"monitor": "val_r2", "val_r2": np.float32(0.5)})
    assert (mv.task, mv.arch, mv.aliases, mv.metrics["val_r2"]) == ("", "", ["best"], 0.5)
    loaded = reg.load("bare@best")
    assert loaded.preprocess_tensors == {} and loaded.spec == {} and loaded.info == {}


def test_versions_increment_per_name_and_resolve(reg):
    assert [register(reg, "a", seed=i).version for i in range(3)] == [1, 2, 3]
    assert register(reg, "b").version == 1
    assert reg.resolve("a").version == 3
    assert reg.resolve("a@latest").version == 3
    assert reg.resolve("a:2").version == 2
    assert [(m.name, m.version) for m in reg.list()] == [("a", 1), ("a", 2), ("a", 3), ("b", 1)]
    assert [m.version for m in reg.list("a")] == [1, 2, 3]
    assert reg.names() == ["a", "b"]


def test_best_follows_a_loss_like_monitor(reg):
    for seed, loss in enumerate([0.5, 0.7, 0.3, 0.3]):
        register(reg, seed=seed, monitor="val_loss", val_loss=loss)
    assert reg.resolve("digits-cnn@best").version == 3  # a tie keeps the older one


def test_best_follows_an_accuracy_like_monitor(reg):
    for seed, acc in enumerate([0.5, 0.9, 0.7]):
        register(reg, seed=seed, monitor="val_accuracy", val_accuracy=acc, val_loss=acc)
    assert reg.resolve("digits-cnn@best").version == 2
    assert lower_is_better("val_rmse") and lower_is_better("val_mae") and not lower_is_better("val_f1")


def test_best_ignores_missing_or_non_finite_metrics(reg):
    register(reg, seed=0, val_loss=0.2)  # no monitor: @best untouched
    assert reg.resolve("digits-cnn:1").aliases == []
    register(reg, seed=1, monitor="val_loss", val_loss=float("nan"))
    register(reg, seed=2, monitor="val_loss", val_loss=0.9)
    register(reg, seed=3, monitor="val_loss", val_loss=float("inf"))
    assert reg.resolve("digits-cnn@best").version == 3  # the first finite value; inf never wins


def test_set_and_remove_alias(reg):
    register(reg, seed=0)
    register(reg, seed=1)
    assert reg.set_alias("digits-cnn:1", "prod").aliases == ["prod"]
    assert reg.resolve("digits-cnn@prod").version == 1
    reg.set_alias("digits-cnn", "prod")  # moving an alias
    assert reg.resolve("digits-cnn@prod").version == 2
    assert reg.resolve("digits-cnn:2").aliases == ["best", "prod"]
    reg.remove_alias("digits-cnn", "prod")
    with pytest.raises(NotFoundError, match="has no alias 'prod'; aliases: best"):
        reg.resolve("digits-cnn@prod")
    with pytest.raises(NotFoundError, match="has no alias 'prod'"):
        reg.remove_alias("digits-cnn", "prod")
    with pytest.raises(ConflictError, match="reserved"):
        reg.set_alias("digits-cnn:1", "latest")
    with pytest.raises(ConflictError):
        reg.remove_alias("digits-cnn", "latest")
    with pytest.raises(UserError, match="invalid alias"):
        reg.remove_alias("digits-cnn", "../x")
    for bad in ("Prod", "a/b", "..", ""):
        with pytest.raises(UserError, match="invalid alias"):
            reg.set_alias("digits-cnn:1", bad)


def test_delete_version_and_name(reg):
    for seed in range(3):
        register(reg, seed=seed)
    reg.set_alias("digits-cnn:3", "prod")
    deleted = reg.delete("digits-cnn@prod")
    assert [m.version for m in deleted] == [3]
    assert [m.version for m in reg.list("digits-cnn")] == [1, 2]
    assert reg.resolve("digits-cnn").version == 2
    with pytest.raises(NotFoundError, match="no alias 'best'"):  # @best is not re-pointed
        reg.resolve("digits-cnn@best")
    assert not (reg.root / "models" / "digits-cnn" / "3").exists()
    assert register(reg, seed=9).version == 4  # numbers are never reused
    with pytest.raises(UserError, match="all_versions"):
        reg.delete("digits-cnn")
    assert len(reg.delete("digits-cnn", all_versions=True)) == 3
    assert reg.names() == []
    assert not (reg.root / "models" / "digits-cnn").exists()


def test_not_found_messages(reg):
    with pytest.raises(NotFoundError, match="no model named 'x'; no models are registered yet"):
        reg.resolve("x")
    register(reg, "digits", seed=0)
    register(reg, "digits", seed=1)
    register(reg, "iris")
    with pytest.raises(NotFoundError) as err:
        reg.load("digitz")
    assert str(err.value) == "no model named 'digitz' (did you mean 'digits'?); registered: digits, iris"
    with pytest.raises(NotFoundError) as err:
        reg.resolve("digits:7")
    assert str(err.value) == "digits has no version 7; versions: 1, 2"
    with pytest.raises(NotFoundError) as err:
        reg.resolve("iris@prod")
    assert str(err.value) == "iris has no alias 'prod'; aliases: best"
    with pytest.raises(NotFoundError, match="did you mean 'iris'"):
        reg.list("irs")
    with pytest.raises(NotFoundError):
        reg.delete("digits:9")


@pytest.mark.parametrize("bad", ["../../etc/passwd", "a/b", "%2e%2e%2f", "..", "Digits", "", "."])
def test_invalid_names_create_nothing(tmp_path, bad):
    reg = Registry(tmp_path / "store")
    before = files_under(tmp_path)
    with pytest.raises(UserError):
        register(reg, bad)
    for call in (reg.resolve, reg.load, reg.delete):
        with pytest.raises(UserError):
            call(bad)
    assert files_under(tmp_path) == before


def test_failed_rename_leaves_no_trace(reg, monkeypatch):
    register(reg, seed=0)
    real_replace = os.replace

    def crash_on_folder(src, dst):
        if os.path.isdir(src) and Path(src).name.startswith(".tmp-"):
            raise OSError("simulated crash while publishing")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_folder)
    with pytest.raises(OSError, match="simulated"):
        register(reg, seed=1)
    monkeypatch.undo()
    assert [m.version for m in reg.list()] == [1]
    assert os.listdir(reg.root / "models" / "digits-cnn") == ["1"]
    assert register(reg, seed=2).version == 2


def test_failed_insert_after_rename_removes_the_folder(reg, monkeypatch):
    register(reg, seed=0)

    def boom(*args):
        raise RuntimeError("simulated crash after the rename")

    monkeypatch.setattr(registry_module, "_update_best", boom)
    with pytest.raises(RuntimeError, match="simulated"):
        register(reg, seed=1)
    monkeypatch.undo()
    assert [m.version for m in reg.list()] == [1]
    assert os.listdir(reg.root / "models" / "digits-cnn") == ["1"]
    assert register(reg, seed=2).version == 2


def test_crash_leftovers_are_ignored_and_cleaned(reg):
    register(reg, seed=0)
    folder = reg.root / "models" / "digits-cnn"
    old, fresh, orphan = folder / ".tmp-old", folder / ".tmp-fresh", folder / "2"
    for path in (old, fresh, orphan):
        path.mkdir()
        (path / "weights.safetensors").write_bytes(b"half")
    an_hour_ago = time.time() - 3700
    os.utime(old, (an_hour_ago, an_hour_ago))
    reopened = Registry(reg.root)
    assert not old.exists() and fresh.exists()  # a fresh one may be a live writer's
    assert [m.version for m in reopened.list()] == [1]
    assert register(reopened, seed=1).version == 2  # the orphan "2" is replaced
    assert reopened.load("digits-cnn:2").weights["weight"].shape == (2, 3)


def test_reopened_registry_sees_everything(reg):
    register(reg, seed=0)
    register(reg, seed=1)
    reg.set_alias("digits-cnn:1", "prod")
    again = Registry(reg.root)
    assert again.list() == reg.list()
    assert again.resolve("digits-cnn@prod").version == 1
    assert again.resolve("digits-cnn@best").version == 2


def test_default_root_is_the_store_home(_private_home):
    reg = Registry()
    assert reg.root == _private_home.resolve()
    assert (_private_home / "registry.db").exists()


def test_wal_mode_and_no_pickle(reg):
    register(reg)
    assert reg.journal_mode == "wal"
    with sqlite3.connect(reg.root / "registry.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    suffixes = {p.suffix for p in reg.root.rglob("*") if p.is_file()}
    assert not suffixes & {".pt", ".pth", ".pkl", ".pickle", ".bin"}


def test_threads_get_distinct_versions(reg):
    versions, errors = [], []

    def work(seed):
        try:
            versions.append(register(reg, seed=seed).version)
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(versions) == list(range(1, 9))
    assert [m.version for m in reg.list()] == list(range(1, 9))
    best = reg.resolve("digits-cnn@best")  # which thread came first varies; the lowest loss wins
    assert best.metrics["val_loss"] == min(m.metrics["val_loss"] for m in reg.list())


def _register_three(root: str, seed: int) -> list[int]:
    reg = Registry(root)
    return [register(reg, "shared", seed=seed * 10 + i).version for i in range(3)]


def test_processes_get_distinct_versions(tmp_path):
    root = str(tmp_path / "store")
    Registry(root)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        results = pool.starmap(_register_three, [(root, 1), (root, 2)])
    got = sorted(v for vs in results for v in vs)
    assert got == [1, 2, 3, 4, 5, 6]
    assert [m.version for m in Registry(root).list("shared")] == got
