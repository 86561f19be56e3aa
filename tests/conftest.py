"""Shared test set-up: one torch thread (2 shared cores are noisy), a private store per test."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest


@pytest.fixture(autouse=True)
def _private_home(tmp_path, monkeypatch):
    """Every test gets its own NBAIMAAS_HOME, so no test sees another's models."""
    home = tmp_path / "nbaimaas-home"
    monkeypatch.setenv("NBAIMAAS_HOME", str(home))
    from nbaimaas.session import current

    current().reset()
    yield home
    current().reset()


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    try:
        import torch
    except ImportError:  # layers that must not need torch are tested without it too
        yield
        return
    torch.set_num_threads(1)
    yield
