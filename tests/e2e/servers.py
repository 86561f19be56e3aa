"""Jupyter servers for the browser tests: JupyterLab and Voila on free loopback ports.

Each server runs as a child process in its own session, with a token and its own config,
runtime, data, settings, workspaces and IPython folders (nothing from the user's home leaks in),
logs to a file, and is stopped with SIGTERM (then SIGKILL of its process group if it hangs).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

#: Where the tutorials live in the repository.
NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"

#: JupyterLab user settings for a quiet, deterministic UI: no news or update toasts over the
#: page, every cell kept in the DOM (windowing would leave off-screen cells unrendered), and no
#: autosave (a test that opens a notebook must find it as copied, not with an earlier test's
#: outputs and execution counts in it).
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false", "checkForUpdates": False, "doNotDisturbMode": True},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def copy_notebooks(dest: Path, clear_outputs: bool = True) -> Path:
    """A private copy of notebooks/ in ``dest``; by default without stored outputs or widget
    state, so every widget the tests see was rendered live, not restored from the file."""
    dest.mkdir(parents=True, exist_ok=True)
    for src in sorted(NOTEBOOKS.glob("*.ipynb")):
        nb = nbformat.read(src, as_version=4)
        if clear_outputs:
            for cell in nb.cells:
                if cell.cell_type == "code":
                    cell.outputs, cell.execution_count = [], None
            nb.metadata.pop("widgets", None)
        nbformat.write(nb, dest / src.name)
    for extra in NOTEBOOKS.iterdir():     # data files or configs the notebooks may read
        if extra.is_file() and extra.suffix != ".ipynb":
            shutil.copy2(extra, dest / extra.name)
    return dest


def isolated_env(base: Path) -> dict[str, str]:
    """Environment for a Jupyter server (and its kernels) that reads nothing from the user's home."""
    env = dict(os.environ)
    dirs = {
        "JUPYTER_CONFIG_DIR": "config", "JUPYTER_RUNTIME_DIR": "runtime", "JUPYTER_DATA_DIR": "data",
        "JUPYTERLAB_WORKSPACES_DIR": "workspaces", "JUPYTERLAB_SETTINGS_DIR": "settings",
        "IPYTHONDIR": "ipython", "NBAIMAAS_HOME": "nbaimaas-home", "MPLCONFIGDIR": "mpl",
    }
    for var, name in dirs.items():
        path = base / name
        path.mkdir(parents=True, exist_ok=True)
        env[var] = str(path)
    for key, value in LAB_SETTINGS.items():
        target = base / "settings" / key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(value))
    env.update(OMP_NUM_THREADS="1", PYTHONHASHSEED="0", JUPYTER_PLATFORM_DIRS="1",
               PYDEVD_DISABLE_FILE_VALIDATION="1", PYTHONUNBUFFERED="1")
    # The kernel should pick its own matplotlib backend, as it does for a user (tests set Agg).
    env.pop("MPLBACKEND", None)
    env.pop("NBAIMAAS_PROGRESS", None)
    # The venv's scripts first, so `jupyter` subcommands and kernels use this interpreter.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


@dataclass
class Server:
    name: str
    proc: subprocess.Popen
    port: int
    token: str
    root: Path
    log_path: Path
    _log: object = field(repr=False, default=None)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str, **query: str) -> str:
        """``base + path`` with the token (and ``query``) appended."""
        params = "&".join([f"{k}={v}" if v != "" else k for k, v in query.items()] + [f"token={self.token}"])
        sep = "&" if "?" in path else "?"
        return f"{self.base}{path}{sep}{params}"

    def api(self, method: str, path: str, timeout: float = 10) -> object:
        """Call the server's REST API (JSON in, JSON out; None for an empty body)."""
        req = urllib.request.Request(f"{self.base}{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def shutdown_kernels(self) -> None:
        """Stop every kernel of this server (frees the 2 CPUs for the next test)."""
        try:
            kernels = self.api("GET", "/api/kernels") or []
        except (OSError, urllib.error.URLError, ValueError):
            return
        for kernel in kernels:
            try:
                self.api("DELETE", f"/api/kernels/{kernel['id']}")
            except (OSError, urllib.error.URLError):
                pass

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM (the servers shut their kernels down on it), then SIGKILL the process group."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(10)
        if self._log is not None:
            self._log.close()


def _start(name: str, args: list[str], *, port: int, token: str, root: Path, env: dict,
           log_dir: Path, ready_path: str, timeout: float) -> Server:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(args, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    server = Server(name, proc, port, token, root, log_path, log)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            server.stop()
            raise RuntimeError(f"{name} exited with {proc.returncode} while starting:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(server.url(ready_path), timeout=5) as resp:
                if resp.status == 200:
                    return server
        except (OSError, urllib.error.URLError):
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"{name} not ready after {timeout:.0f} s:\n{server.log_tail()}")
        time.sleep(0.25)


def start_lab(root: Path, state: Path, log_dir: Path, timeout: float = 90) -> Server:
    """JupyterLab on a free loopback port, serving ``root``, with its state kept under ``state``."""
    port, token = free_port(), secrets.token_hex(16)
    args = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
            "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.news_url=None"]
    return _start("jupyterlab", args, port=port, token=token, root=root, env=isolated_env(state),
                  log_dir=log_dir, ready_path="/api/status", timeout=timeout)


def start_voila(root: Path, state: Path, log_dir: Path, timeout: float = 90) -> Server:
    """Voila on a free loopback port, serving the notebooks in ``root`` as app pages."""
    port, token = free_port(), secrets.token_hex(16)
    args = [sys.executable, "-m", "voila", str(root), "--no-browser", "--Voila.ip=127.0.0.1",
            f"--port={port}", f"--token={token}", "--Voila.port_retries=0"]
    return _start("voila", args, port=port, token=token, root=root, env=isolated_env(state),
                  log_dir=log_dir, ready_path="/voila/tree", timeout=timeout)
