"""File-safety helpers for everything nbaimaas keeps on disk (registry, checkpoints, run logs).

Two rules hold for every file written here:

- A reader sees either the old file or the new one, never half of one: data goes to a temp
  file in the same folder (same filesystem, so the rename is atomic), is fsynced, renamed over
  the target, and the folder is fsynced so the rename itself survives a power cut.
- Nothing is pickled: tensors are safetensors, everything else is JSON.

Paths are built from validated names and then checked again with :func:`inside`, so a bug in a
name check still cannot write outside the store.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save as _safetensors_bytes

from ..errors import UserError
from ..paths import store_path

__all__ = [
    "home", "inside", "fsync_dir", "atomic_write_bytes", "atomic_write_text",
    "atomic_write_json", "to_json", "read_json", "save_tensors", "load_tensors",
    "remove_tree", "clean_stale", "append_event", "read_events", "next_seq",
]


def home(path: str | os.PathLike | None = None) -> Path:
    """The store root: ``path``, else ``$NBAIMAAS_HOME``, else ``~/.nbaimaas`` (created)."""
    root = store_path(path)
    root.mkdir(parents=True, exist_ok=True)
    return root.resolve()


def inside(root: str | os.PathLike, *parts: str | os.PathLike) -> Path:
    """``root/parts...`` resolved; UserError if the result is not inside ``root``.

    Defence in depth: names are already strict, but an absolute part, ``..`` or a symlink
    pointing elsewhere is caught here, before anything is created.
    """
    base = Path(root).resolve()
    target = base.joinpath(*parts).resolve()
    if target != base and base not in target.parents:
        shown = "/".join(str(p) for p in parts)
        raise UserError(f"path {shown!r} escapes the store {str(base)!r}")
    return target


def fsync_dir(path: str | os.PathLike) -> None:
    """Make a rename or create in ``path`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # Windows cannot open a folder; its renames are durable enough
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems (tmpfs variants, network mounts) refuse folder fsync
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so a crash leaves the old file or the new one, never a mix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """JSON with sorted keys (stable diffs); numpy scalars and arrays become plain numbers."""
    return atomic_write_text(path, to_json(obj))


def to_json(obj: Any) -> str:
    try:
        return json.dumps(obj, indent=2, sort_keys=True, default=_plain)
    except (TypeError, ValueError) as err:
        raise UserError(f"cannot store as JSON: {err}") from None


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def save_tensors(
    path: str | os.PathLike,
    tensors: dict[str, torch.Tensor],
    metadata: dict[str, str] | None = None,
) -> Path:
    """Store named tensors as safetensors, atomically. Tensors are copied to the CPU first."""
    if metadata is not None and not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise UserError("safetensors metadata must map strings to strings")
    return atomic_write_bytes(path, _safetensors_bytes(_plain_tensors(tensors), metadata=metadata))


def load_tensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``(tensors on the CPU, metadata)`` from a safetensors file; never unpickles anything."""
    with safe_open(str(path), framework="pt", device="cpu") as f:
        tensors = {key: f.get_tensor(key) for key in f.keys()}
        metadata = dict(f.metadata() or {})
    return tensors, metadata


def remove_tree(folder: str | os.PathLike) -> None:
    """Delete a folder; it is first renamed to ``.trash-*`` so a half-removed one never keeps
    a name that looks valid (a crash mid-delete leaves only trash, cleaned by clean_stale)."""
    folder = Path(folder)
    trash = folder.parent / f".trash-{uuid.uuid4().hex}"
    try:
        os.replace(folder, trash)
    except FileNotFoundError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def clean_stale(folder: str | os.PathLike, max_age_s: float = 3600.0) -> None:
    """Remove ``.tmp-*`` entries older than ``max_age_s`` (a crashed writer's; a younger one
    may belong to a live writer) and every ``.trash-*`` entry in ``folder``."""
    cutoff = time.time() - max_age_s
    for child in Path(folder).iterdir():
        try:
            stale = child.name.startswith(".trash-") or (
                child.name.startswith(".tmp-") and child.lstat().st_mtime < cutoff)
        except OSError:  # removed by someone else meanwhile
            continue
        if not stale:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            _unlink_quietly(child)


def _plain_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU tensors, each with its own storage.

    safetensors refuses tensors that share memory (tied weights, views of one buffer), so a
    tensor whose storage was already seen is cloned rather than failing the whole save.
    """
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for key, value in tensors.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise UserError(
                f"tensors must map names to torch tensors, got {key!r}: {type(value).__name__}")
        t = value.detach().to("cpu").contiguous()
        ptr = t.untyped_storage().data_ptr()
        if ptr in seen or t.untyped_storage().nbytes() != t.numel() * t.element_size():
            t = t.clone()
        seen.add(t.untyped_storage().data_ptr())
        out[key] = t
    return out


def _plain(obj: Any) -> Any:
    """json.dumps fallback: numpy values (they have ``tolist``), paths and sets."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _unlink_quietly(path: str | os.PathLike) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


# -- append-only event logs (one JSON event a line: service jobs, distributed runs) ------------

def append_event(path: Path, event: dict) -> None:
    """Append one event as a line; a single write, so readers see whole lines or none."""
    line = json.dumps(event, separators=(",", ":"))
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()


def read_events(path: Path, after: int = -1) -> list[dict]:
    """Events numbered above ``after``; complete lines only: a reader may catch the writer mid-line."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    events = (json.loads(line) for line in data.split(b"\n")[:-1])
    return [e for e in events if e["seq"] > after]


def next_seq(path: Path) -> int:
    """The number the next event appended to ``path`` takes (a resumed run continues the log)."""
    events = read_events(path)
    return events[-1]["seq"] + 1 if events else 0
