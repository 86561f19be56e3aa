"""What crosses the wire between ServiceClient and the service, and how it is checked.

Plain numpy and JSON only (no torch, no fastapi, no httpx), so the client and the server share
one definition of the format:

- arrays travel as ``.npy`` (read with ``allow_pickle=False``; object arrays are refused);
- small or non-numeric values (strings, DataFrames) travel as JSON;
- weights travel as safetensors, whose header is checked here *before* any library parses it;
- nothing is ever unpickled: pickle or zip (torch.save) payloads are refused whatever the
  content type claims.
"""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import AuthError, DataError, UserError

__all__ = [
    "NPY_TYPE", "SAFETENSORS_TYPE", "NDJSON_TYPE", "UnsupportedMediaError", "PayloadTooLargeError",
    "ForbiddenError", "encode_npy", "decode_npy", "check_safetensors", "encode_inline",
    "decode_inline", "to_jsonable", "from_jsonable", "ARRAY_ID", "dumps", "loads", "to_numpy",
]

NPY_TYPE = "application/x-npy"
SAFETENSORS_TYPE = "application/octet-stream"
NDJSON_TYPE = "application/x-ndjson"
ARRAY_ID = re.compile(r"arr-[0-9a-f]{24}")

NPY_MAGIC = b"\x93NUMPY"
MAX_HEADER = 100 * 2**20          # safetensors' own limit for the JSON header
_ARRAY_KINDS = "biuf"             # bool, ints, floats: what an upload may hold (plus strings)
DTYPE_SIZES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2,
    "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}


class UnsupportedMediaError(UserError):
    """A payload in a format the service never reads (pickle, zip, unknown content type)."""

    code = "unsupported_media"
    http_status = 415


class PayloadTooLargeError(UserError):
    code = "too_large"
    http_status = 413


class ForbiddenError(AuthError):
    """A valid token without the right: the read-only predict token on an admin route."""

    code = "forbidden"
    http_status = 403


def dumps(obj: Any) -> str:
    """JSON as Python writes it: NaN and Infinity stay numbers, so metrics round-trip exactly."""
    return json.dumps(obj, separators=(",", ":"), default=_plain)


def loads(text: str | bytes) -> Any:
    return json.loads(text)


def _plain(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


# -- pickle and friends -----------------------------------------------------------------------

def _looks_like_pickle(body: bytes) -> bool:
    # Protocol 2+ starts with PROTO (0x80); torch.save writes a zip; protocols 0/1 start with
    # an opcode such as '(' or ']' or 'c' — none of these start a valid .npy or safetensors.
    return body[:1] == b"\x80" or body[:4] == b"PK\x03\x04" or body[:1] in (b"(", b"]", b"}", b"c")


def _refuse_pickle(what: str) -> UnsupportedMediaError:
    return UnsupportedMediaError(
        f"refused: the {what} looks like a pickle or torch.save file",
        "nbaimaas never unpickles uploads; send .npy arrays or safetensors weights")


# -- .npy -------------------------------------------------------------------------------------

def encode_npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


_NPY_HEADERS: dict[bytes, tuple[np.dtype, tuple, bool]] = {}   # header bytes -> parsed


def decode_npy(body: bytes) -> np.ndarray:
    """An array from ``.npy`` bytes; never unpickles (object arrays are refused)."""
    fast = _decode_npy_fast(body)
    if fast is not None:
        return fast
    if not body.startswith(NPY_MAGIC):
        if _looks_like_pickle(body):
            raise _refuse_pickle("array")
        raise DataError("the body is not a .npy array", "write it with numpy.save(f, array)")
    try:
        array = np.load(io.BytesIO(body), allow_pickle=False)
    except ValueError as err:
        if "pickle" in str(err) or "Object arrays" in str(err):
            raise UnsupportedMediaError("refused: object arrays need pickle",
                                        "send numbers, booleans or strings") from None
        raise DataError(f"the .npy array is malformed: {err}") from None
    except (OSError, EOFError) as err:
        raise DataError(f"the .npy array is malformed: {err}") from None
    if array.dtype.kind not in _ARRAY_KINDS + "U":
        raise UnsupportedMediaError(f"arrays of dtype {array.dtype} are not accepted")
    return array


def _decode_npy_fast(body: bytes) -> np.ndarray | None:
    """Requests of one shape repeat one header: parse it once (numpy parses it with
    ast.literal_eval, ~50 us), then view the data. None: let the full path decide (and refuse)."""
    if not body.startswith(NPY_MAGIC) or len(body) < 10 or body[6] not in (1, 2):
        return None
    start = 10 if body[6] == 1 else 12
    end = start + int.from_bytes(body[8:start], "little")
    header = body[start:end]
    parsed = _NPY_HEADERS.get(header)
    if parsed is None:
        try:
            fp = io.BytesIO(body)
            np.lib.format.read_magic(fp)
            read = (np.lib.format.read_array_header_1_0 if body[6] == 1
                    else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read(fp)
        except (ValueError, OSError, EOFError):
            return None
        if dtype.hasobject or dtype.kind not in _ARRAY_KINDS + "U" or fp.tell() != end:
            return None
        parsed = (dtype, tuple(shape), bool(fortran))
        if len(_NPY_HEADERS) >= 256:
            _NPY_HEADERS.clear()
        _NPY_HEADERS[header] = parsed
    dtype, shape, fortran = parsed
    count = math.prod(shape)
    if len(body) - end != count * dtype.itemsize:
        return None              # truncated or padded: the full path says what is wrong
    flat = np.frombuffer(body, dtype=dtype, count=count, offset=end).copy()   # writable, owned
    return flat.reshape(shape, order="F" if fortran else "C")


# -- safetensors ------------------------------------------------------------------------------

def check_safetensors(body: bytes) -> dict:
    """The parsed header of a safetensors body, after checking every claim it makes.

    Header length sane (< 100 MB and inside the body), JSON object, known dtypes, shapes of
    non-negative ints, dtype x shape == byte span, spans contiguous from 0 to the body's end.
    """
    n = int.from_bytes(body[:8], "little") if len(body) >= 8 else 0
    if len(body) < 8 or body[8:9] != b"{" or not 2 <= n <= MAX_HEADER:
        if _looks_like_pickle(body):
            raise _refuse_pickle("upload")
        raise DataError("not a safetensors file (bad header length or start)",
                        "save the weights with safetensors.torch.save_file")
    if 8 + n > len(body):
        raise DataError(f"safetensors header claims {n} bytes but the body has {len(body) - 8}")
    try:
        header = json.loads(body[8:8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"safetensors header is not valid JSON: {err}") from None
    if not isinstance(header, dict):
        raise DataError("safetensors header must be a JSON object")
    _check_spans(header, len(body) - 8 - n)
    return header


def _check_spans(header: dict, data_len: int) -> None:
    spans = []
    for name, entry in header.items():
        if name == "__metadata__":
            if not isinstance(entry, dict) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in entry.items()):
                raise DataError("safetensors __metadata__ must map strings to strings")
            continue
        spans.append(_check_entry(name, entry, data_len))
    end = 0
    for start, stop, name in sorted(spans):
        if start != end:
            raise DataError(f"safetensors tensor {name!r} does not follow the previous one "
                            f"(offset {start}, expected {end})")
        end = stop
    if end != data_len:
        raise DataError(f"safetensors data is {data_len} bytes but the tensors cover {end}")


def _check_entry(name: str, entry: Any, data_len: int) -> tuple[int, int, str]:
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise DataError(f"safetensors entry {name!r} needs exactly dtype, shape and data_offsets")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype not in DTYPE_SIZES:
        raise DataError(f"safetensors tensor {name!r} has unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(_nonneg_int(d) for d in shape):
        raise DataError(f"safetensors tensor {name!r} has a bad shape {shape!r}")
    if (not isinstance(offsets, list) or len(offsets) != 2 or not all(map(_nonneg_int, offsets))
            or not offsets[0] <= offsets[1] <= data_len):
        raise DataError(f"safetensors tensor {name!r} has offsets {offsets!r} outside the data")
    if math.prod(shape) * DTYPE_SIZES[dtype] != offsets[1] - offsets[0]:
        raise DataError(f"safetensors tensor {name!r}: {dtype} x {shape} does not match its "
                        f"{offsets[1] - offsets[0]} bytes")
    return offsets[0], offsets[1], name


def _nonneg_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


# -- small values as JSON ---------------------------------------------------------------------

def to_numpy(a: Any) -> np.ndarray:
    if hasattr(a, "detach") and hasattr(a, "cpu"):      # a torch tensor, without importing torch
        return a.detach().cpu().numpy()
    if hasattr(a, "to_numpy"):
        return a.to_numpy()
    return np.asarray(a)


def _is_frame(a: Any) -> bool:
    return type(a).__name__ == "DataFrame" and hasattr(a, "columns")


def to_jsonable(value: Any) -> dict:
    """A tagged JSON form of arrays, string lists and DataFrames (exact dtype and shape)."""
    if _is_frame(value):
        return {"frame": {"columns": [str(c) for c in value.columns],
                          "data": {str(c): value[c].tolist() for c in value.columns}}}
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return {"list": list(value)}
    array = to_numpy(value)
    if array.dtype.kind in "US":
        return {"list": array.tolist()}
    if array.dtype.kind not in _ARRAY_KINDS:
        raise UserError(f"cannot send values of dtype {array.dtype} to a service",
                        "send numbers, booleans or strings")
    return {"ndarray": {"dtype": array.dtype.str, "shape": list(array.shape),
                        "data": array.ravel().tolist()}}


def from_jsonable(doc: Any, load_array: Callable[[str], np.ndarray] | None = None) -> Any:
    if not isinstance(doc, dict) or len(doc) != 1:
        raise DataError("an encoded value must be one of {list}, {ndarray}, {frame}, {array}")
    (tag, body), = doc.items()
    if tag == "list" and isinstance(body, list):
        return body
    if tag == "ndarray" and isinstance(body, dict):
        return _ndarray(body)
    if tag == "frame" and isinstance(body, dict):
        return _frame(body)
    if tag == "array" and isinstance(body, str) and load_array is not None:
        if not ARRAY_ID.fullmatch(body):
            raise DataError(f"bad array id {body!r}")
        return load_array(body)
    raise DataError(f"unknown encoded value {tag!r}")


def _ndarray(body: dict) -> np.ndarray:
    try:
        dtype = np.dtype(body["dtype"])
        if dtype.kind not in _ARRAY_KINDS:
            raise DataError(f"dtype {dtype} is not accepted")
        return np.asarray(body["data"], dtype=dtype).reshape(body["shape"])
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(f"malformed ndarray value: {err}") from None


def _frame(body: dict) -> Any:
    try:
        import pandas as pd
    except ImportError:
        raise DataError("DataFrame data needs pandas on the service") from None
    columns, data = body.get("columns"), body.get("data")
    if not isinstance(columns, list) or not isinstance(data, dict) or set(columns) != set(data):
        raise DataError("a frame needs 'columns' and 'data' with one list per column")
    return pd.DataFrame({c: data[c] for c in columns}, columns=columns)


# -- inline training data ---------------------------------------------------------------------

def encode_inline(inline: Any, upload: Callable[[np.ndarray], str]) -> dict | None:
    """Inline data as JSON; numeric arrays are uploaded first (``upload`` returns an id)."""
    if inline is None:
        return None
    if _is_module_like(inline):
        raise UserError("a custom nn.Module can only train in process; use a catalog "
                        "architecture or a 'layers' spec with a service")
    if _is_frame(inline):
        return {"frame": to_jsonable(inline)}
    if isinstance(inline, (tuple, list)) and len(inline) == 2 and not isinstance(inline[0], str):
        return {"pair": [_encode_value(v, upload) for v in inline]}
    return {"single": _encode_value(inline, upload)}


def _encode_value(value: Any, upload: Callable[[np.ndarray], str]) -> dict:
    if _is_frame(value) or (isinstance(value, (list, tuple)) and value
                            and all(isinstance(v, str) for v in value)):
        return to_jsonable(value)
    array = to_numpy(value)
    if array.dtype.kind in _ARRAY_KINDS:
        return {"array": upload(array)}
    return to_jsonable(array)


def decode_inline(doc: dict | None, load_array: Callable[[str], np.ndarray]) -> Any:
    if doc is None:
        return None
    if not isinstance(doc, dict) or len(doc) != 1:
        raise DataError("inline data must be one of {pair}, {single}, {frame}")
    (tag, body), = doc.items()
    if tag == "pair" and isinstance(body, list) and len(body) == 2:
        return tuple(from_jsonable(v, load_array) for v in body)
    if tag == "single":
        return from_jsonable(body, load_array)
    if tag == "frame":
        return from_jsonable(body, load_array)
    raise DataError(f"unknown inline data form {tag!r}")


def _is_module_like(obj: Any) -> bool:
    return all(hasattr(obj, a) for a in ("state_dict", "parameters", "forward"))
