"""The error tree: every error knows its HTTP status and survives serialization."""

from __future__ import annotations

import pickle

import pytest

from raymlops import exceptions as ex


@pytest.mark.parametrize(
    ("cls", "status"),
    [
        (ex.RaymlopsError, 500),
        (ex.ConfigError, 400),
        (ex.BadRequestError, 400),
        (ex.ModelNotFoundError, 404),
        (ex.VersionNotFoundError, 404),
        (ex.AliasNotFoundError, 404),
        (ex.FeatureViewNotFoundError, 404),
        (ex.DatasetNotFoundError, 404),
        (ex.ConflictError, 409),
        (ex.PayloadTooLargeError, 413),
        (ex.UnsupportedMediaTypeError, 415),
        (ex.ValidationError, 422),
        (ex.SchemaMismatchError, 422),
        (ex.UnsafeArtifactError, 403),
        (ex.ClusterNotRunningError, 503),
    ],
)
def test_status_codes(cls: type[ex.RaymlopsError], status: int) -> None:
    assert cls.http_status == status
    assert issubclass(cls, ex.RaymlopsError)


def test_only_server_side_errors_are_5xx() -> None:
    """Errors a user causes by bad input must never map to a 5xx."""
    user_errors = [ex.ConfigError, ex.BadRequestError, ex.NotFoundError, ex.ConflictError,
                   ex.PayloadTooLargeError, ex.UnsupportedMediaTypeError, ex.ValidationError,
                   ex.UnsafeArtifactError]
    for cls in user_errors:
        for sub in [cls, *cls.__subclasses__()]:
            assert 400 <= sub.http_status < 500, sub


def test_to_dict_and_back() -> None:
    err = ex.VersionNotFoundError("model 'm' has no version 7", model="m", version=7)
    body = err.to_dict()
    assert body == {
        "detail": "model 'm' has no version 7",
        "error": "VersionNotFoundError",
        "context": {"model": "m", "version": 7},
    }
    again = ex.error_from_dict(body)
    assert type(again) is ex.VersionNotFoundError
    assert again.context == {"model": "m", "version": 7}


def test_unknown_error_name_falls_back_to_base() -> None:
    assert type(ex.error_from_dict({"detail": "x", "error": "Nope"})) is ex.RaymlopsError


def test_pickle_keeps_type_and_context() -> None:
    """Ray ships actor errors by pickling; the context must survive the trip."""
    err = ex.SchemaMismatchError("column 'temp' is string, expected float", column="temp")
    back = pickle.loads(pickle.dumps(err))  # noqa: S301 - our own bytes, just made
    assert type(back) is ex.SchemaMismatchError
    assert back.context == {"column": "temp"} and str(back) == str(err)


def test_non_json_context_values_are_stringified() -> None:
    from pathlib import Path

    body = ex.DatasetNotFoundError("missing", path=Path("/x/y")).to_dict()
    assert body["context"]["path"] == "/x/y"
