"""Shared paths and the one nbval command the tutorials are tested with."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
SANITIZE = NOTEBOOKS / "nbval_sanitize.cfg"


def nbval_command(*targets: str) -> list[str]:
    """``pytest --nbval-lax`` over notebooks/ (or the given targets), as CI and the README run it."""
    return [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env",
            "--nbval-sanitize-with", str(SANITIZE.relative_to(ROOT)), "-p", "no:cacheprovider",
            "-q", *(targets or ("notebooks/",))]


def notebook_env(env: dict) -> dict:
    """One torch thread and a fixed hash seed: the same numbers on every run."""
    return {**env, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0", "MPLBACKEND": "Agg"}


def tutorial_paths() -> list[Path]:
    return sorted(p for p in NOTEBOOKS.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
