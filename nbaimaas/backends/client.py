"""ServiceClient: the Backend protocol over HTTP, so every magic works after ``%aimaas_connect URL``.

    ai.connect("http://127.0.0.1:8765")                  # token from the shared store
    ai.connect(url, token="...")                         # or NBAIMAAS_TOKEN

Same result objects and the same exceptions as LocalBackend: the service sends errors as
``{code, message, hint}`` and the code picks the class (``errors.ERRORS_BY_CODE``), so a user
mistake made on the server reads exactly like a local one. The transport is a seam:
``transport=httpx.MockTransport(...)``, or ``client=`` any httpx.Client (a FastAPI TestClient).

Inline data crosses the wire only as arrays, string lists or DataFrames (numeric arrays are
uploaded as ``.npy`` first); a custom nn.Module can only train in process.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from ..paths import store_path
from ..errors import ERRORS_BY_CODE, AuthError, NbaimaasError, NotFoundError, ServiceError
from ..errors import ServiceUnavailable, TrainingError, UserError, ConflictError
from ..events import Event, event_from_dict
from ..names import check_model_name, parse_ref
from ..results import ArchInfo, DatasetInfo, EvalResult, ModelSummary, ModelVersion, Prediction, TrainResult
from ..specs import DataSpec, ModelSpec, PredictRequest, TrainSpec

__all__ = ["ServiceClient", "RemoteRun"]

TOKEN_ENV = "NBAIMAAS_TOKEN"
TERMINAL = ("completed", "stopped", "failed", "interrupted")
LONG_POLL_S = 30.0
_MODULE_ONLY = ("a custom nn.Module can only train in process; use a catalog architecture or a "
                "'layers' spec with a service")


class ServiceClient:
    name = "service"

    def __init__(self, url: str, token: str | None = None, home: str | os.PathLike | None = None,
                 transport: httpx.BaseTransport | None = None, *, client: httpx.Client | None = None,
                 timeout: float = 30.0):
        self.url = url.rstrip("/")
        token = token or os.environ.get(TOKEN_ENV) or _token_from_store(home)
        auth = {"Authorization": f"Bearer {token}"} if token else {}
        self._given_client = client is not None
        if client is not None:
            client.headers.update(auth)
            self._http = client
        else:
            self._http = httpx.Client(base_url=self.url, transport=transport, headers=auth,
                                      timeout=httpx.Timeout(timeout, connect=5.0))
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"ServiceClient({self.url!r})"     # never the token

    def close(self) -> None:
        self._http.close()

    # -- plumbing ---------------------------------------------------------------------------
    def request(self, method: str, path: str, **kw) -> httpx.Response:
        """One HTTP call; transport failures and error JSON become nbaimaas errors."""
        if self._given_client:
            kw.pop("timeout", None)     # a given client (a TestClient) keeps its own timeouts
        try:
            response = self._http.request(method, path, **kw)
        except httpx.TransportError as err:
            raise ServiceUnavailable(f"cannot reach nbaimaas at {self.url}: {err or type(err).__name__}",
                                     "start it with `nbaimaas serve` (or ai.serve()) and check the URL") from None
        if response.status_code >= 400:
            raise _error_from(response)
        return response

    def _json(self, method: str, path: str, **kw) -> Any:
        return self.request(method, path, **kw).json()

    def _upload_array(self, array) -> str:
        from ..service.wire import NPY_TYPE, encode_npy

        return self._json("POST", "/v1/arrays", content=encode_npy(array),
                          headers={"Content-Type": NPY_TYPE})["id"]

    def _inline(self, inline: Any) -> dict | None:
        from ..service.wire import encode_inline

        return encode_inline(inline, self._upload_array)

    def health(self) -> dict:
        return self._json("GET", "/v1/health")

    # -- catalogs ---------------------------------------------------------------------------
    def datasets(self) -> list[DatasetInfo]:
        return [DatasetInfo.from_dict(d) for d in self._json("GET", "/v1/datasets")]

    def architectures(self, task: str | None = None, modality: str | None = None) -> list[ArchInfo]:
        params = {k: v for k, v in (("task", task), ("modality", modality)) if v is not None}
        return [ArchInfo.from_dict(a) for a in self._json("GET", "/v1/architectures", params=params)]

    def describe_data(self, data: DataSpec, inline: Any = None) -> dict:
        return self._json("POST", "/v1/data/describe",
                          json={"data": data.to_dict(), "inline": self._inline(inline)})

    def sample(self, data: DataSpec, split: str = "test", n: int = 16, inline: Any = None) -> dict:
        from ..service.wire import from_jsonable

        out = self._json("POST", "/v1/data/sample", json={
            "data": data.to_dict(), "split": split, "n": n, "inline": self._inline(inline)})
        return {"inputs": from_jsonable(out["inputs"]), "labels": from_jsonable(out["labels"]),
                "info": out["info"]}

    def summary(self, model: ModelSpec, data: DataSpec, inline: Any = None, module: Any = None):
        if module is not None:
            raise UserError(_MODULE_ONLY)
        return ModelSummary.from_dict(self._json("POST", "/v1/summary", json={
            "model": model.to_dict(), "data": data.to_dict(), "inline": self._inline(inline)}))

    # -- training ---------------------------------------------------------------------------
    def start_training(self, spec: TrainSpec, inline: Any = None, module: Any = None) -> "RemoteRun":
        if module is not None or spec.model.arch == "module":
            raise UserError(_MODULE_ONLY)
        job = self._json("POST", "/v1/jobs", json={"spec": spec.to_dict(), "inline": self._inline(inline)},
                         timeout=max(self._timeout, 150.0))
        return RemoteRun(self, job)

    def resume(self, run_id: str, inline: Any = None) -> "RemoteRun":
        # The service kept the job's own data (inline arrays included); ``inline`` is not needed.
        job = self._json("POST", f"/v1/jobs/{_seg(run_id)}/resume", timeout=max(self._timeout, 150.0))
        return RemoteRun(self, job)

    def get_run(self, run_id: str) -> "RemoteRun":
        return RemoteRun(self, self._json("GET", f"/v1/jobs/{_seg(run_id)}"))

    def runs(self) -> list["RemoteRun"]:
        return [RemoteRun(self, job) for job in self._json("GET", "/v1/jobs")]

    def lr_find(self, spec: TrainSpec, inline: Any = None, module: Any = None) -> dict:
        if module is not None:
            raise UserError(_MODULE_ONLY)
        return self._json("POST", "/v1/lr-find", json={"spec": spec.to_dict(), "inline": self._inline(inline)},
                          timeout=max(self._timeout, 300.0))

    def tune(self, spec: Any, inline: Any = None, module: Any = None, progress: Any = None):
        # Trials run where Optuna's storage is reachable; the service offers no tuning jobs (yet).
        raise UserError("tuning runs in this kernel or with `nbaimaas tune`; connect local first")

    # -- validation and application ---------------------------------------------------------
    def evaluate(self, model: str, data: DataSpec | None = None, split: str = "test",
                 inline: Any = None) -> EvalResult:
        body = {"data": None if data is None else data.to_dict(), "split": split,
                "inline": self._inline(inline)}
        return EvalResult.from_dict(self._json("POST", f"/v1/models/{_ref(model)}/evaluate", json=body,
                                               timeout=max(self._timeout, 120.0)))

    def predict(self, request: PredictRequest, inputs: Any) -> Prediction:
        path = f"/v1/models/{_ref(request.model)}/predict"
        out = self._json("POST", path, **_predict_body(inputs, request.top_k, request.horizon))
        return Prediction.from_dict(out)

    # -- the registry -----------------------------------------------------------------------
    def models(self, name: str | None = None) -> list[ModelVersion]:
        from ..results import Listing

        if name is not None:
            check_model_name(name)
        params = {"name": name} if name is not None else {}
        items = [ModelVersion.from_dict(m) for m in self._json("GET", "/v1/models", params=params)]
        return Listing(items, caption="registered models")

    def model(self, ref: str) -> ModelVersion:
        return ModelVersion.from_dict(self._json("GET", f"/v1/models/{_ref(ref)}"))

    def set_alias(self, ref: str, alias: str) -> ModelVersion:
        return ModelVersion.from_dict(self._json("PUT", f"/v1/models/{_ref(ref)}/aliases/{_seg(alias)}"))

    def delete(self, ref: str, all_versions: bool = False) -> None:
        self.request("DELETE", f"/v1/models/{_ref(ref)}",
                     params={"all_versions": "true" if all_versions else "false"})

    def download(self, ref: str) -> bytes:
        """The version as one safetensors file (weights, preprocessing, spec JSON in metadata)."""
        return self.request("GET", f"/v1/models/{_ref(ref)}/download").content

    def upload(self, name: str, data: bytes | str | os.PathLike) -> ModelVersion:
        """Register a downloaded safetensors file under ``name`` (as a new version)."""
        check_model_name(name)
        body = data if isinstance(data, bytes) else Path(data).read_bytes()
        return ModelVersion.from_dict(self._json("POST", f"/v1/models/{name}", content=body,
                                                 headers={"Content-Type": "application/octet-stream"}))


class RemoteRun:
    """A service job behind the Run protocol (``events``, ``wait``, ``result``, ``stop``)."""

    def __init__(self, client: ServiceClient, job: dict):
        self._client = client
        self.id = job["id"]
        self._job = job

    def __repr__(self) -> str:
        return f"<RemoteRun {self.id} {self._job['status']}>"

    @property
    def status(self) -> str:
        if self._job["status"] not in TERMINAL:
            self._job = self._client._json("GET", f"/v1/jobs/{self.id}")
        return self._job["status"]

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    def events(self, after: int = -1, timeout: float | None = 0) -> list[Event]:
        wait = min(timeout or 0, LONG_POLL_S)
        response = self._client.request("GET", f"/v1/jobs/{self.id}/events",
                                        params={"after": after, "wait": wait},
                                        timeout=wait + self._client._timeout)
        from ..service.wire import loads

        return [event_from_dict(loads(line)) for line in response.text.splitlines() if line]

    def stop(self) -> None:
        self._job = self._client._json("POST", f"/v1/jobs/{self.id}/stop")

    def wait(self, timeout: float | None = None) -> TrainResult:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.done:
            left = LONG_POLL_S if deadline is None else deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"run {self.id} still {self._job['status']} after {timeout} s")
            wait = min(left, LONG_POLL_S)
            self._job = self._client._json("GET", f"/v1/jobs/{self.id}", params={"wait": wait},
                                           timeout=wait + self._client._timeout)
        return self.result()

    def result(self) -> TrainResult:
        if self.status == "interrupted":
            raise TrainingError(f"run {self.id} was interrupted (the service restarted)",
                                f"resume it with ai.resume('{self.id}')")
        if not self.done:
            raise TrainingError(f"run {self.id} is still {self._job['status']}", "wait() for it or stop() it first")
        return TrainResult.from_dict(self._client._json("GET", f"/v1/jobs/{self.id}/result"))


# -- helpers ---------------------------------------------------------------------------------

def _token_from_store(home: str | os.PathLike | None) -> str | None:
    """The admin token of a store this process shares with the service (never created here)."""
    try:
        return (store_path(home) / "token").read_text().strip() or None
    except OSError:
        return None


def _ref(ref: str) -> str:
    parse_ref(ref)              # the same UserError as LocalBackend, before any request
    return quote(str(ref), safe=":@")


def _seg(value: str) -> str:
    return quote(str(value), safe="")


def _predict_body(inputs: Any, top_k: int, horizon: int | None) -> dict:
    """Numeric arrays as .npy (exact and compact); strings, lists and DataFrames as JSON."""
    from ..service.wire import NPY_TYPE, encode_npy, to_jsonable, to_numpy

    params = {"top_k": top_k, **({"horizon": horizon} if horizon is not None else {})}
    if not isinstance(inputs, (list, tuple)) and type(inputs).__name__ != "DataFrame":
        array = to_numpy(inputs)
        if array.dtype.kind in "biuf":
            return {"content": encode_npy(array), "headers": {"Content-Type": NPY_TYPE}, "params": params}
    if isinstance(inputs, (list, tuple)) and all(isinstance(v, str) for v in inputs):
        payload: Any = list(inputs)
    else:
        payload = to_jsonable(inputs)
    return {"json": {"inputs": payload, "top_k": top_k, "horizon": horizon}}


_STATUS_CLASSES = {401: AuthError, 403: AuthError, 404: NotFoundError, 409: ConflictError,
                   503: ServiceUnavailable}


def _error_from(response: httpx.Response) -> NbaimaasError:
    try:
        data = response.json()
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    status = response.status_code
    message = data.get("message") or f"HTTP {status} from the service"
    cls = ERRORS_BY_CODE.get(data.get("code"))
    if cls is None or cls is NbaimaasError:
        cls = _STATUS_CLASSES.get(status) or (UserError if status < 500 else ServiceError)
    if status in (401, 403) and not issubclass(cls, AuthError):
        cls = AuthError
    err = cls(message, data.get("hint"))
    if status == 503:
        err.retry_after = float(response.headers.get("Retry-After", 1))
    return err
