"""One error tree for the whole platform.

Every error a user can cause is a subclass of :class:`RaymlopsError` and knows the HTTP status
it maps to, so the CLI, the Python API and the HTTP layer report the same thing the same way
(HTTP answers ``{"detail": ..., "error": <class name>}`` with that status; no 5xx for bad input)::

    RaymlopsError (500)
    ├── ConfigError (400)                  a setting is invalid; names the field
    ├── BadRequestError (400)              malformed input (e.g. body is not JSON)
    ├── AuthenticationError (401)          no or wrong credentials (the inference token)
    ├── NotFoundError (404)
    │   ├── ModelNotFoundError
    │   ├── VersionNotFoundError
    │   ├── AliasNotFoundError
    │   ├── FeatureViewNotFoundError
    │   └── DatasetNotFoundError
    ├── ConflictError (409)                a write that contradicts stored state
    ├── PayloadTooLargeError (413)
    ├── UnsupportedMediaTypeError (415)
    ├── ValidationError (422)              input does not match a schema / signature
    │   └── SchemaMismatchError
    ├── UnsafeArtifactError (403)          pickle from an untrusted store, digest mismatch
    └── ClusterError (503)                 the Ray cluster cannot be reached / started
        └── ClusterNotRunningError
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AliasNotFoundError",
    "AuthenticationError",
    "BadRequestError",
    "ClusterError",
    "ClusterNotRunningError",
    "ConfigError",
    "ConflictError",
    "DatasetNotFoundError",
    "FeatureViewNotFoundError",
    "ModelNotFoundError",
    "NotFoundError",
    "PayloadTooLargeError",
    "RaymlopsError",
    "SchemaMismatchError",
    "UnsafeArtifactError",
    "UnsupportedMediaTypeError",
    "ValidationError",
    "VersionNotFoundError",
    "error_from_dict",
    "typed_cause",
]


class RaymlopsError(Exception):
    """Base of every raymlops error; ``http_status`` says how HTTP reports it."""

    http_status: ClassVar[int] = 500

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = context

    def to_dict(self) -> dict[str, Any]:
        """The JSON body HTTP answers with (FastAPI's ``detail`` convention)."""
        body: dict[str, Any] = {"detail": self.message, "error": type(self).__name__}
        if self.context:
            body["context"] = {k: _jsonable(v) for k, v in self.context.items()}
        return body

    def __reduce__(self):  # keeps context across Ray's (de)serialization of actor errors
        return (_rebuild, (type(self), self.message, self.context))


def _rebuild(cls: type[RaymlopsError], message: str, context: dict[str, Any]) -> RaymlopsError:
    return cls(message, **context)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


class ConfigError(RaymlopsError):
    """A setting is invalid. The message names the field and the value given."""

    http_status = 400


class BadRequestError(RaymlopsError):
    """The request itself is malformed (not JSON, wrong shape)."""

    http_status = 400


class AuthenticationError(RaymlopsError):
    """The request carries no credentials or the wrong ones. Never put the credential itself
    (or the expected one) in the message or context: both reach the client and the logs."""

    http_status = 401


class NotFoundError(RaymlopsError):
    """Something named by the user does not exist."""

    http_status = 404


class ModelNotFoundError(NotFoundError):
    """No registered model has this name."""


class VersionNotFoundError(NotFoundError):
    """The model exists but not this version."""


class AliasNotFoundError(NotFoundError):
    """The model exists but no version carries this alias."""


class FeatureViewNotFoundError(NotFoundError):
    """No feature view (or service) has this name."""


class DatasetNotFoundError(NotFoundError):
    """A dataset file or package that should be there is not."""


class ConflictError(RaymlopsError):
    """The write contradicts what is stored (e.g. an idempotency key reused for other data)."""

    http_status = 409


class PayloadTooLargeError(RaymlopsError):
    """The body or the number of rows is over the configured limit."""

    http_status = 413


class UnsupportedMediaTypeError(RaymlopsError):
    """The request's content type is not one we accept."""

    http_status = 415


class ValidationError(RaymlopsError):
    """Input does not match its schema; the message names the offending field."""

    http_status = 422


class SchemaMismatchError(ValidationError):
    """Data does not match a declared schema or model signature."""


class UnsafeArtifactError(RaymlopsError):
    """Loading would run untrusted code (pickle) or the bytes are not what was registered."""

    http_status = 403


class ClusterError(RaymlopsError):
    """The Ray cluster could not be started, reached or stopped."""

    http_status = 503


class ClusterNotRunningError(ClusterError):
    """An operation needs a running platform and none was found."""


def _all_subclasses(cls: type[RaymlopsError]) -> list[type[RaymlopsError]]:
    out: list[type[RaymlopsError]] = [cls]
    for sub in cls.__subclasses__():
        out.extend(_all_subclasses(sub))
    return out


def error_from_dict(body: dict[str, Any]) -> RaymlopsError:
    """Rebuild a typed error from its ``to_dict`` form (what an HTTP client receives)."""
    by_name = {c.__name__: c for c in _all_subclasses(RaymlopsError)}
    cls = by_name.get(str(body.get("error")), RaymlopsError)
    return cls(str(body.get("detail", "")), **dict(body.get("context") or {}))


def typed_cause(exc: BaseException) -> RaymlopsError | None:
    """The typed error behind ``exc``, if any: a RaymlopsError raised inside a Ray task or
    actor reaches the caller wrapped (RayTaskError); callers re-raise it as itself."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, RaymlopsError):
            return seen
        cause = getattr(seen, "cause", None)
        seen = cause if isinstance(cause, BaseException) else seen.__cause__
    return None
