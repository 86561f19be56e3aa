"""Shared benchmark plumbing: one torch thread, a private store, interleaved repetitions, tables."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

# Before torch is imported anywhere: one intra-op thread in every thread (the engine trains in
# a background thread, and OpenMP's setting is per thread unless it comes from the environment).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")


def private_home() -> str:
    """Point NBAIMAAS_HOME at a throwaway folder so benchmark runs never touch a real store."""
    if "NBAIMAAS_BENCH_HOME" not in os.environ:
        os.environ["NBAIMAAS_BENCH_HOME"] = tempfile.mkdtemp(prefix="nbaimaas-bench-")
    os.environ["NBAIMAAS_HOME"] = os.environ["NBAIMAAS_BENCH_HOME"]
    return os.environ["NBAIMAAS_HOME"]


def one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def interleave(contenders: dict[str, Callable[[], object]], reps: int, warmup: int = 1,
               log: Callable[[str], None] | None = None) -> dict[str, list]:
    """Call every contender once per round, round after round, so drift in machine load hits
    them all alike. Each call returns its own figure (e.g. samples/s, or a tuple whose first
    item is that figure); warm-up rounds are dropped."""
    out: dict[str, list] = {name: [] for name in contenders}
    for r in range(warmup + reps):
        for name, fn in contenders.items():
            value = fn()
            if r >= warmup:
                out[name].append(value)
            if log:
                shown = value[0] if isinstance(value, tuple) else value
                log(f"  round {r + 1 - warmup:>2} {name:<14} {shown:>12,.0f}" + ("  (warm-up)" if r < warmup else ""))
    return out


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: list[float]) -> str:
    return f"{min(values):,.0f}-{max(values):,.0f}" if values else "-"


def table(headers: list[str], rows: list[list]) -> str:
    """A GitHub-flavoured markdown table (also readable in a terminal)."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
                     + [line(r) for r in cells[1:]])


def machine() -> dict:
    """Where and with what the figures were measured."""
    info = {"python": sys.version.split()[0], "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    try:
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        if names:
            info["processor"] = names[0]
    except OSError:
        pass
    import importlib.metadata as md

    versions = {}
    for pkg in ("torch", "numpy", "scikit-learn", "lightning", "skorch", "fastapi", "uvicorn", "httpx"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    info["versions"] = versions
    return info


def have(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def report(out: dict, title: str, json_path: str | None) -> dict:
    """Print a benchmark's table under its title and, when asked, save everything as JSON."""
    import json
    from pathlib import Path

    print(title)
    print(out["table"])
    if json_path:
        Path(json_path).write_text(json.dumps(out, indent=2))
    return out
