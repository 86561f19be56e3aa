"""store.py: the store root, atomic writes, safetensors round trips and the path guard."""

from __future__ import annotations

import json
import os

import pytest
import torch
from torch import nn

from nbaimaas.engine import store
from nbaimaas.errors import UserError


def test_home_argument_env_and_default(tmp_path, monkeypatch, _private_home):
    assert store.home() == _private_home.resolve()
    assert _private_home.is_dir()  # created on demand
    assert store.home(tmp_path / "explicit") == (tmp_path / "explicit").resolve()
    monkeypatch.delenv("NBAIMAAS_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert store.home() == (tmp_path / "user" / ".nbaimaas").resolve()


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "a.txt"
    store.atomic_write_text(target, "one")
    store.atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert os.listdir(target.parent) == ["a.txt"]


def test_atomic_write_failure_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "a.json"
    store.atomic_write_json(target, {"v": 1})

    def broken(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError):
        store.atomic_write_json(target, {"v": 2})
    assert json.loads(target.read_text()) == {"v": 1}
    assert os.listdir(tmp_path) == ["a.json"]  # the temp file was removed


def test_json_handles_numpy_and_rejects_objects(tmp_path):
    np = pytest.importorskip("numpy")
    path = store.atomic_write_json(tmp_path / "m.json", {"acc": np.float32(0.5), "c": np.arange(2)})
    assert store.read_json(path) == {"acc": 0.5, "c": [0, 1]}
    with pytest.raises(UserError, match="JSON"):
        store.to_json({"bad": object()})


def test_tensors_round_trip_with_metadata(tmp_path):
    sd = nn.Linear(3, 2).state_dict()
    path = store.save_tensors(tmp_path / "w.safetensors", sd, {"kind": "linear"})
    tensors, meta = store.load_tensors(path)
    assert meta == {"kind": "linear"}
    assert tensors.keys() == sd.keys()
    for key in sd:
        assert torch.equal(tensors[key], sd[key])


def test_shared_and_non_contiguous_tensors_are_saved(tmp_path):
    base = torch.arange(12.0).reshape(3, 4)
    tensors = {"a": base, "tied": base, "t": base.t(), "row": base[1], "empty": torch.zeros(0)}
    store.save_tensors(tmp_path / "w.safetensors", tensors)
    loaded, meta = store.load_tensors(tmp_path / "w.safetensors")
    assert meta == {}
    for key, value in tensors.items():
        assert torch.equal(loaded[key], value)


def test_save_tensors_rejects_bad_input(tmp_path):
    with pytest.raises(UserError):
        store.save_tensors(tmp_path / "w.safetensors", {"a": [1, 2]})
    with pytest.raises(UserError):
        store.save_tensors(tmp_path / "w.safetensors", {"a": torch.zeros(1)}, {"n": 1})
    assert not (tmp_path / "w.safetensors").exists()


@pytest.mark.parametrize("parts", [("..",), ("a", "..", ".."), ("/etc/passwd",), ("../x",)])
def test_inside_refuses_escapes(tmp_path, parts):
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(UserError, match="escapes"):
        store.inside(root, *parts)


def test_inside_refuses_symlinks_out(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(tmp_path)
    with pytest.raises(UserError):
        store.inside(root, "link", "x")
    assert store.inside(root, "models", "a", "1") == (root / "models" / "a" / "1").resolve()
    assert store.inside(root) == root.resolve()


def test_event_log_reads_whole_lines_and_continues_numbering(tmp_path):
    from nbaimaas.engine.store import append_event, next_seq, read_events

    log = tmp_path / "events.jsonl"
    assert read_events(log) == [] and next_seq(log) == 0
    for seq in range(3):
        append_event(log, {"kind": "Progress", "seq": seq})
    with open(log, "a") as f:
        f.write('{"kind": "Progr')                 # a writer caught mid-line
    assert [e["seq"] for e in read_events(log)] == [0, 1, 2]
    assert [e["seq"] for e in read_events(log, after=1)] == [2]
    assert next_seq(log) == 3
