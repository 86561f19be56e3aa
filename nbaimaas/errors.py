"""Every error nbaimaas raises on purpose, in one tree.

    NbaimaasError                 base: ``str(err)`` is one actionable line, ``err.hint`` more
    ├── UserError                 the caller's mistake; magics show it as a one-line UsageError
    │   ├── SpecError             a spec field has a bad value (``lr=-1``, unknown optimiser)
    │   ├── UnknownNameError      unknown dataset / architecture / scheme, with "did you mean"
    │   ├── DataError             empty data, mismatched lengths, NaN, wrong dtype or shape
    │   ├── IncompatibleError     a model that does not fit the data's task or shape
    │   ├── NotFoundError         unknown model name, version, alias or run id
    │   └── ConflictError         an alias or name that would clash
    ├── TrainingError             training stopped for a reason that is not a bug
    │   ├── NonFiniteLossError    "loss became NaN at epoch E, step S"
    │   └── OutOfMemoryError      the device ran out of memory (hint: smaller batch)
    └── ServiceError              talking to a model service failed
        ├── ServiceUnavailable    cannot reach the service, or it is overloaded (503)
        ├── RateLimited           this token sent more requests a second than the service allows (429)
        └── AuthError             missing or wrong token

Everything here is plain Python: no torch, no IPython, so every layer can import it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "NbaimaasError",
    "UserError",
    "SpecError",
    "UnknownNameError",
    "DataError",
    "IncompatibleError",
    "NotFoundError",
    "ConflictError",
    "TrainingError",
    "NonFiniteLossError",
    "OutOfMemoryError",
    "ServiceError",
    "ServiceUnavailable",
    "RateLimited",
    "AuthError",
    "unknown_name",
    "error_from_dict",
]


class NbaimaasError(Exception):
    """Base of every deliberate nbaimaas error. ``code`` names it on the wire."""

    code = "error"

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "hint": self.hint}


class UserError(NbaimaasError, ValueError):
    code = "bad_request"


class SpecError(UserError):
    code = "bad_spec"


class UnknownNameError(UserError, KeyError):
    code = "unknown_name"

    # KeyError.__str__ would quote the message; keep the plain line.
    __str__ = NbaimaasError.__str__


class DataError(UserError):
    code = "bad_data"


class IncompatibleError(UserError):
    code = "incompatible"


class NotFoundError(UserError, LookupError):
    code = "not_found"


class ConflictError(UserError):
    code = "conflict"


class TrainingError(NbaimaasError, RuntimeError):
    code = "training_failed"


class NonFiniteLossError(TrainingError):
    code = "non_finite_loss"


class OutOfMemoryError(TrainingError):
    code = "out_of_memory"


class ServiceError(NbaimaasError, RuntimeError):
    code = "service_error"


class ServiceUnavailable(ServiceError):
    code = "unavailable"


class RateLimited(ServiceError):
    code = "rate_limited"


class AuthError(ServiceError):
    code = "unauthorized"


def unknown_name(kind: str, name: str, known: Iterable[str]) -> UnknownNameError:
    """``unknown architecture 'lenett' (did you mean 'lenet'?); known: lenet, mlp, ...``"""
    known = sorted(known)
    close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.5)
    guess = f" (did you mean '{close[0]}'?)" if close else ""
    return UnknownNameError(f"unknown {kind} '{name}'{guess}; known: {', '.join(known)}")


ERRORS_BY_CODE = {
    cls.code: cls
    for cls in (
        NbaimaasError, UserError, SpecError, UnknownNameError, DataError, IncompatibleError,
        NotFoundError, ConflictError, TrainingError, NonFiniteLossError, OutOfMemoryError,
        ServiceError, ServiceUnavailable, RateLimited, AuthError,
    )
}


def error_from_dict(data: dict, default: str = "failed") -> NbaimaasError:
    """The exception a ``NbaimaasError.to_dict()`` came from (its class by ``code``), as read back
    from a job's or a distributed run's files."""
    cls = ERRORS_BY_CODE.get(data.get("code"), NbaimaasError)
    return cls(data.get("message", default), data.get("hint"))

