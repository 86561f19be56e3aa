"""A model version as one self-describing safetensors file (download and upload).

    tensors   weights/<state_dict key>, preprocess/<preprocessor tensor>
    metadata  {"nbaimaas": JSON {"format", "spec", "info", "preprocess", "metrics"}}

A download can be uploaded again as is. An upload is checked in full before anything is
written: the header (wire.check_safetensors), the spec and data info, the architecture rebuilt
from them accepting the weights exactly (strict load), and the preprocessor rebuilt.
"""

from __future__ import annotations

import json

from ..errors import DataError, IncompatibleError, NbaimaasError, UserError
from .wire import check_safetensors

__all__ = ["pack_model", "unpack_model"]

FORMAT = 1
_WEIGHTS, _PRE = "weights/", "preprocess/"


def pack_model(loaded) -> bytes:
    """safetensors bytes of a registry LoadedModel."""
    from safetensors.torch import save

    tensors = {_WEIGHTS + k: v for k, v in loaded.weights.items()}
    tensors.update({_PRE + k: v for k, v in loaded.preprocess_tensors.items()})
    # Own storage per tensor: safetensors refuses shared memory (tied weights, views).
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    doc = {"format": FORMAT, "name": loaded.version.name, "version": loaded.version.version,
           "spec": loaded.spec, "info": loaded.info, "preprocess": loaded.preprocess_meta,
           "metrics": loaded.metrics}
    return save(tensors, metadata={"nbaimaas": json.dumps(doc)})


def unpack_model(body: bytes) -> dict:
    """Keyword arguments for Registry.register, after every check passed."""
    header = check_safetensors(body)
    doc = _document(header)
    from safetensors.torch import load

    try:
        tensors = load(body)
    except Exception as err:  # noqa: BLE001 - the library's own refusal, in one line
        raise DataError(f"the safetensors body cannot be read: {err}") from None
    weights = {k[len(_WEIGHTS):]: v for k, v in tensors.items() if k.startswith(_WEIGHTS)}
    pre = {k[len(_PRE):]: v for k, v in tensors.items() if k.startswith(_PRE)}
    if len(weights) + len(pre) != len(tensors):
        raise DataError("tensor names must start with 'weights/' or 'preprocess/'")
    _check_rebuilds(doc, weights, pre)
    return {"weights": weights, "spec": doc["spec"], "info": doc["info"],
            "preprocess_meta": doc["preprocess"], "preprocess_tensors": pre,
            "metrics": doc.get("metrics") or {}}


def _document(header: dict) -> dict:
    raw = header.get("__metadata__", {}).get("nbaimaas")
    if raw is None:
        raise DataError("the safetensors metadata has no 'nbaimaas' entry",
                        "upload a file downloaded from GET /v1/models/{ref}/download")
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as err:
        raise DataError(f"the 'nbaimaas' metadata is not JSON: {err}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise DataError(f"the 'nbaimaas' metadata must be a format-{FORMAT} object")
    for key in ("spec", "info", "preprocess"):
        if not isinstance(doc.get(key), dict):
            raise DataError(f"the 'nbaimaas' metadata needs a '{key}' object")
    if not isinstance(doc.get("metrics", {}), dict):
        raise DataError("'metrics' must be an object")
    return doc


def _check_rebuilds(doc: dict, weights: dict, pre: dict) -> None:
    from ..engine.data import load_preprocessor
    from ..engine.models import create_model
    from ..engine.types import DataInfo
    from ..specs import TrainSpec

    spec = TrainSpec.from_dict(doc["spec"])
    if spec.model.arch == "module":
        raise IncompatibleError("a model trained from your own nn.Module cannot be rebuilt here")
    try:
        info = DataInfo.from_dict(doc["info"])
    except TypeError as err:
        raise DataError(f"the data info is malformed: {err}") from None
    model = create_model(spec.model, info)
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        raise IncompatibleError(f"the weights do not fit {spec.model.arch} for this data: "
                                f"{first[1].strip() if len(first) > 1 else first[0]}") from None
    try:
        load_preprocessor(doc["preprocess"], pre)
    except NbaimaasError:
        raise
    except Exception as err:  # noqa: BLE001
        raise UserError(f"the preprocessing state cannot be rebuilt: {type(err).__name__}: {err}") from None
