"""The prediction service under load from a loopback client: requests/s, p50 and p99.

Starts ``nbaimaas serve`` (uvicorn, 1 worker, 1 torch thread) on a free loopback port with a
store holding LeNet-5 trained on digits at 28x28, then drives ``POST /v1/models/{ref}/predict``
with one 28x28 image per request, as JSON ``{"inputs": ...}`` and as an ``application/x-npy``
body, from N keep-alive connections (a small asyncio HTTP/1.1 client, so the client costs
little next to the server) at concurrency 1, 16 and 64. For reference the same load goes to a
plain FastAPI endpoint (``bench/_plain_server.py``: parse JSON, call the model per request),
the baseline the issue measured. Both servers run side by side and each round loads one after
the other, so a machine that slows down for a while slows both. Client and servers share this
machine's cores.

Skips, with a note, when the service (``nbaimaas.cli``, fastapi, uvicorn) is not there yet.

    python -m bench.service [--seconds 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import have, report, table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODEL = "bench-lenet"
CONCURRENCY = (1, 16, 64)
SERVE = ("import sys; from nbaimaas.cli import main; sys.argv = ['nbaimaas'] + sys.argv[1:]; "
         "sys.exit(main())")


def unavailable() -> str | None:
    """Why the service cannot be benchmarked here, or None."""
    for mod in ("fastapi", "uvicorn"):
        if not have(mod):
            return f"{mod} is not installed (pip install 'nbaimaas[service]')"
    if not have("nbaimaas.cli"):
        return "the service is not there yet: nbaimaas.cli (`nbaimaas serve`) is not importable"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(store: Path) -> dict:
    return {**os.environ, "NBAIMAAS_HOME": str(store), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def start(cmd: list[str], store: Path, port: int, timeout: float = 60) -> subprocess.Popen:
    """Start a server process and wait until its port accepts connections."""
    log = open(store / f"server-{port}.log", "w+b")
    proc = subprocess.Popen(cmd, env=_env(store), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            tail = log.read().decode(errors="replace").strip().splitlines()[-3:]
            raise RuntimeError(f"server exited with {proc.returncode}: {' | '.join(tail)}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"server did not listen on port {port} within {timeout:.0f} s")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def bodies(image) -> dict[str, tuple[str, bytes]]:
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, image[None].astype(np.float32), allow_pickle=False)   # [1, 28, 28]
    return {"json": ("application/json", json.dumps({"inputs": image[None].tolist()}).encode()),
            "binary": ("application/x-npy", buf.getvalue())}


def request_bytes(port: int, path: str, token: str | None, ctype: str, body: bytes) -> bytes:
    head = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Type: {ctype}",
            f"Content-Length: {len(body)}", "Accept: application/json"]
    if token:
        head.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def _connection(port: int, req: bytes, until: float, lat: list, codes: dict) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < until:
            t = time.perf_counter()
            writer.write(req)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            lat.append(time.perf_counter() - t)
            code = int(head[9:12])
            codes[code] = codes.get(code, 0) + 1
    finally:
        writer.close()


def load(port: int, req: bytes, concurrency: int, seconds: float) -> dict:
    lat: list[float] = []
    codes: dict[int, int] = {}

    async def main():
        until = time.perf_counter() + seconds
        await asyncio.gather(*(_connection(port, req, until, lat, codes) for _ in range(concurrency)))

    t = time.perf_counter()
    asyncio.run(main())
    wall = time.perf_counter() - t
    lat.sort()
    pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1e3 if lat else float("nan")  # noqa: E731
    return {"rps": len(lat) / wall, "p50_ms": pct(0.50), "p99_ms": pct(0.99), "codes": codes}


def _prepare_store(store: Path):
    """Train and register the model in the store the servers will read; one raw 28x28 image."""
    import numpy as np

    os.environ["NBAIMAAS_HOME"] = str(store)
    import nbaimaas as ai
    from nbaimaas.session import current

    current().reset()
    ai.train(data="digits", model="lenet", image_size=28, epochs=1, name=MODEL)
    raw = np.asarray(ai.sample("digits", n=1)["inputs"][0], dtype=np.float32)       # 8x8, 0..16
    image = np.kron(raw, np.ones((4, 4), dtype=np.float32))[2:30, 2:30]              # 28x28
    return np.ascontiguousarray(np.pad(image, ((0, 0), (0, 0))))


def _targets(store: Path) -> dict[str, list[str]]:
    return {
        "nbaimaas serve": [sys.executable, "-c", SERVE, "serve", "--host", "127.0.0.1", "--port", "{port}",
                           "--store", str(store)],
        "plain FastAPI": [sys.executable, str(ROOT / "bench" / "_plain_server.py"), "--port", "{port}",
                          "--store", str(store), "--model", MODEL],
    }


class _Target:
    """One running server and its requests, one per body mode it takes."""

    def __init__(self, name: str, cmd: list[str], store: Path, image):
        self.name, self.port = name, free_port()
        self.proc = start([c.replace("{port}", str(self.port)) for c in cmd], store, self.port)
        token_file = store / "token"
        token = token_file.read_text().strip() if token_file.exists() else None
        self.requests, self.notes = {}, []
        for mode, (ctype, body) in bodies(image).items():
            if name == "plain FastAPI" and mode == "binary":
                continue
            req = request_bytes(self.port, f"/v1/models/{MODEL}/predict", token, ctype, body)
            probe = load(self.port, req, 1, 0.3)       # also warms the model and the batcher up
            if set(probe["codes"]) == {200}:
                self.requests[mode] = req
            else:
                self.notes.append(f"{name} {mode}: answered {probe['codes']}, not 200; not measured")


def run(seconds: float = 2.0, rounds: int = 3) -> dict:
    why = unavailable()
    if why:
        return {"skipped": why, "table": f"skipped: {why}"}
    store = Path(tempfile.mkdtemp(prefix="nbaimaas-bench-service-"))
    image = _prepare_store(store)
    targets, notes = [], []
    try:
        for name, cmd in _targets(store).items():
            try:
                targets.append(_Target(name, cmd, store, image))
                notes += targets[-1].notes
            except RuntimeError as exc:
                notes.append(f"{name}: {exc}")
        out = _measure(targets, seconds, rounds)
    finally:
        for target in targets:
            stop(target.proc)
    rows = [[name, r["mode"], r["concurrency"], f"{r['rps']:,.0f}", f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}",
             r["non_200"]] for name, res in out.items() for r in res.values()]
    text = table(["server", "body", "concurrency", "req/s", "p50 (ms)", "p99 (ms)", "non-200"], rows) if rows else ""
    if not out.get("nbaimaas serve"):
        why = "the service did not answer predictions: " + "; ".join(notes)
        return {"skipped": why, "results": out, "table": (text + "\n" if text else "") + f"skipped: {why}"}
    return {"results": out, "notes": notes, "table": text + "".join(f"\n- {n}" for n in notes)}


def _measure(targets: list[_Target], seconds: float, rounds: int) -> dict:
    """Every server runs side by side; each round loads them one after another (interleaved),
    so a machine that slows down for a while slows all of them alike. Medians over rounds."""
    runs: dict[tuple, list[dict]] = {}
    for mode in ("json", "binary"):
        for conc in CONCURRENCY:
            for _ in range(rounds):
                for t in targets:
                    if mode in t.requests:
                        runs.setdefault((t.name, mode, conc), []).append(
                            load(t.port, t.requests[mode], conc, seconds))
    out: dict[str, dict] = {}
    for (name, mode, conc), rs in runs.items():
        out.setdefault(name, {})[f"{mode} c{conc}"] = {
            "mode": mode, "concurrency": conc,
            "rps": statistics.median(r["rps"] for r in rs),
            "p50_ms": statistics.median(r["p50_ms"] for r in rs),
            "p99_ms": statistics.median(r["p99_ms"] for r in rs),
            "non_200": sum(n for r in rs for c, n in r["codes"].items() if c != 200)}
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=2.0, help="length of one load run")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json")
    a = p.parse_args(argv)
    out = run(a.seconds, a.rounds)
    return report(out, "prediction service under loopback load (one 28x28 image per request)", a.json)


if __name__ == "__main__":
    main()
