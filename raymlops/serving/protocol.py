"""HTTP payloads -> DataFrames and predictions -> JSON: MLflow scoring and Open Inference v2.

Pure functions (no Ray, no FastAPI), so every rule of the contract is unit-tested:

- content type other than JSON (or CSV for MLflow's endpoint) -> 415;
- body over ``max_body_bytes`` or more than ``max_rows`` rows -> 413;
- bytes that are not UTF-8 JSON -> 400;
- JSON of the wrong shape (no format key, two format keys, ragged rows...) -> 422 naming the
  offending key. Column names and types are checked later against the model's signature
  (:mod:`raymlops.serving.schema`), because only the replica knows which version answers.

The MLflow shapes follow ``mlflow.pyfunc.scoring_server`` of MLflow 3: exactly one of
``dataframe_split`` (``{"columns", "data", "index"?}``), ``dataframe_records`` (a list of
objects), ``instances`` (rows: objects or lists) and ``inputs`` (columns: an object of lists,
or rows), plus an optional ``params``; the answer is ``{"predictions": [...]}``.
"""

from __future__ import annotations

import functools
import io
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from raymlops.exceptions import (
    BadRequestError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
    ValidationError,
)
from raymlops.serving.columns import Columns

__all__ = [
    "MLFLOW_FORMATS",
    "Limits",
    "V2Request",
    "check_content_length",
    "check_media_type",
    "decode_json",
    "jsonable",
    "parse_invocations",
    "parse_v2_infer",
    "query_flag",
    "v2_response",
]

MLFLOW_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
JSON_TYPES = ("application/json",)
CSV_TYPE = "text/csv"
V2_DATATYPES = {
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BYTES",
}


@dataclass(frozen=True)
class Limits:
    """Per-request limits; over either one is a 413, checked before any parsing work."""

    max_body_bytes: int = 4 * 1024 * 1024
    max_rows: int = 10_000


def check_media_type(content_type: str | None, allowed: tuple[str, ...]) -> str:
    """The media type if allowed (charset, when given, must be UTF-8), else 415."""
    if not content_type:
        raise UnsupportedMediaTypeError(
            f"missing Content-Type: send one of {list(allowed)}", allowed=list(allowed)
        )
    parts = [p.strip() for p in content_type.split(";")]
    media = parts[0].lower()
    params = dict(p.partition("=")[::2] for p in parts[1:] if p)
    charset = params.get("charset", "utf-8").strip('"').lower()
    if media not in allowed or charset not in ("utf-8", "utf8"):
        raise UnsupportedMediaTypeError(
            f"unsupported Content-Type {content_type!r}: send one of {list(allowed)} (UTF-8)",
            allowed=list(allowed), got=content_type,
        )
    return media


def check_content_length(header: str | None, limits: Limits) -> None:
    """Refuse an announced oversize body before reading it."""
    if header is None:
        return
    try:
        length = int(header)
    except ValueError:
        raise BadRequestError(f"invalid Content-Length {header!r}") from None
    if length > limits.max_body_bytes:
        raise PayloadTooLargeError(
            f"body of {length} bytes is over the limit of {limits.max_body_bytes} bytes",
            limit=limits.max_body_bytes,
        )


def decode_json(body: bytes, limits: Limits) -> Any:
    if len(body) > limits.max_body_bytes:
        raise PayloadTooLargeError(
            f"body of {len(body)} bytes is over the limit of {limits.max_body_bytes} bytes",
            limit=limits.max_body_bytes,
        )
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequestError(f"body is not valid UTF-8 JSON: {exc}") from None
    except RecursionError:
        # No scoring format nests more than a few levels; a body of brackets would otherwise
        # exhaust the parser's recursion and surface as a 500.
        raise BadRequestError("body is JSON nested deeper than any request format allows "
                              "(arrays or objects within each other)") from None


def _check_rows(count: int, limits: Limits) -> None:
    if count > limits.max_rows:
        raise PayloadTooLargeError(
            f"{count} rows is over the limit of {limits.max_rows} rows per request",
            limit=limits.max_rows,
        )
    if count == 0:
        raise ValidationError("the request has no rows", field="inputs")


def _rows_frame(rows: Any, key: str, limits: Limits, as_columns: bool = False) -> pd.DataFrame | Columns:
    """A list of objects (named) or of lists (positional) or of scalars (one column)."""
    if not isinstance(rows, list):
        raise ValidationError(f"{key!r} must be a list of rows, got {type(rows).__name__}",
                              field=key)
    _check_rows(len(rows), limits)
    if all(isinstance(r, dict) for r in rows):
        columns = Columns.from_records(rows) if as_columns else None
        return columns if columns is not None else pd.DataFrame.from_records(rows)
    if all(isinstance(r, list) for r in rows):
        width = len(rows[0])
        ragged = next((i for i, r in enumerate(rows) if len(r) != width), None)
        if ragged is not None:
            raise ValidationError(f"{key!r}: row {ragged} has {len(rows[ragged])} values, "
                                  f"row 0 has {width}", field=key, row=ragged)
        if any(isinstance(v, (list, dict)) for r in rows for v in r):
            raise ValidationError(f"{key!r}: rows must hold scalars, not nested lists/objects",
                                  field=key)
        return pd.DataFrame(rows)
    if all(not isinstance(r, (list, dict)) for r in rows):
        return pd.DataFrame({0: rows})
    raise ValidationError(f"{key!r} mixes objects, lists and scalars", field=key)


def _columns_frame(columns: dict[str, Any], key: str, limits: Limits) -> pd.DataFrame:
    lengths = {}
    for name, values in columns.items():
        if not isinstance(values, list):
            values = [values]
            columns = {**columns, name: values}
        if any(isinstance(v, (list, dict)) for v in values):
            raise ValidationError(f"field {name!r}: values must be scalars", field=name)
        lengths[name] = len(values)
    if not lengths:
        raise ValidationError(f"{key!r} has no columns", field=key)
    first = next(iter(lengths.values()))
    _check_rows(first, limits)
    odd = next((n for n, length in lengths.items() if length != first), None)
    if odd is not None:
        raise ValidationError(f"field {odd!r} has {lengths[odd]} values, others have {first}",
                              field=odd)
    frame = _float_frame(columns)
    return frame if frame is not None else pd.DataFrame(columns)


def _float_frame(columns: dict[str, list[Any]]) -> pd.DataFrame | None:
    """Columns of JSON floats only (the usual online request) as one float64 block, else None.

    Why: ``pd.DataFrame(dict)`` sanitizes every column on its own (~0.13 ms for a row of 8
    features, per request); one 2-D array is ~0.05 ms. The frame is the same (float64
    columns, same names and RangeIndex); anything else (ints, bools, strings, nulls) keeps
    pandas' per-column dtype inference.
    """
    if not all(type(v) is float for values in columns.values() for v in values):
        return None
    array = np.array(list(columns.values()), dtype=np.float64).T
    return pd.DataFrame(array, columns=_column_index(tuple(columns)), copy=False)


@functools.lru_cache(maxsize=256)
def _column_index(names: tuple[str, ...]) -> pd.Index:
    """The column Index of a request's names, built once per set of names.

    Why: building it infers a string dtype for the names on every request (~0.1 ms of a
    ~1 ms request in a replica's profile at 64 concurrent requests); clients send the same
    names each time, and an Index is immutable, so frames can share one.
    """
    return pd.Index(list(names))


def _split_frame(value: Any, limits: Limits) -> pd.DataFrame:
    key = "dataframe_split"
    if not isinstance(value, dict):
        raise ValidationError(f"{key!r} must be an object with 'columns' and 'data'", field=key)
    unknown = set(value) - {"columns", "data", "index"}
    if unknown or "data" not in value:
        raise ValidationError(f"{key!r} must have 'data' and optionally 'columns' and 'index'"
                              f", got keys {sorted(value)}", field=key)
    frame = _rows_frame(value["data"], key, limits)
    columns = value.get("columns")
    if columns is not None:
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise ValidationError(f"{key!r}: 'columns' must be a list of names", field=key)
        if len(columns) != len(frame.columns):
            raise ValidationError(f"{key!r}: {len(columns)} columns but rows have "
                                  f"{len(frame.columns)} values", field=key)
        frame.columns = columns
    return frame


def parse_invocations(body: bytes, content_type: str | None, limits: Limits,
                      as_columns: bool = False) -> pd.DataFrame | Columns:
    """``POST /models/{name}/invocations`` body -> DataFrame (columns named, or positional).

    ``as_columns``: ``dataframe_records`` of scalars come back as :class:`Columns`, for the
    serving hot path (:meth:`LoadedVersion.prepare` takes both)."""
    media = check_media_type(content_type, (*JSON_TYPES, CSV_TYPE))
    if media == CSV_TYPE:
        if len(body) > limits.max_body_bytes:
            raise PayloadTooLargeError(f"body of {len(body)} bytes is over the limit",
                                       limit=limits.max_body_bytes)
        try:
            frame = pd.read_csv(io.BytesIO(body))
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
            raise BadRequestError(f"body is not valid CSV: {exc}") from None
        _check_rows(len(frame), limits)
        return frame
    payload = decode_json(body, limits)
    if not isinstance(payload, dict):
        raise ValidationError(
            f"the body must be a JSON object with exactly one of {list(MLFLOW_FORMATS)}, got "
            f"a {type(payload).__name__}", field="body")
    keys = [k for k in MLFLOW_FORMATS if k in payload]
    unknown = [k for k in payload if k not in MLFLOW_FORMATS and k != "params"]
    if len(keys) != 1 or unknown:
        raise ValidationError(
            f"the body must have exactly one of {list(MLFLOW_FORMATS)} (and optionally "
            f"'params'), got keys {sorted(payload)}", field=(unknown or keys or ["body"])[0])
    if payload.get("params"):
        raise ValidationError("this model takes no 'params'", field="params")
    key = keys[0]
    value = payload[key]
    if key == "dataframe_split":
        return _split_frame(value, limits)
    if key == "inputs" and isinstance(value, dict):
        return _columns_frame(value, key, limits)
    return _rows_frame(value, key, limits, as_columns)


# -- Open Inference Protocol (KServe v2) ------------------------------------------------------


@dataclass
class V2Request:
    """A parsed v2 infer request: the frame, its id and the outputs asked for."""

    frame: pd.DataFrame
    id: str | None = None
    outputs: list[str] = field(default_factory=list)


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    out: list[Any] = []
    for item in data:
        out.extend(_flatten(item) if isinstance(item, list) else [item])
    return out


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# datatype family -> (what its values must be, their name in an error)
_V2_VALUE_CHECKS = {"BOOL": (_is_bool, "booleans"), "BYTES": (_is_str, "strings"),
                    "INT": (_is_int, "integers"), "FP": (_is_number, "numbers")}


def _check_v2_values(name: str, datatype: str, values: list[Any]) -> None:
    ok, what = _V2_VALUE_CHECKS[
        "BOOL" if datatype == "BOOL" else "BYTES" if datatype == "BYTES"
        else "INT" if datatype.startswith(("INT", "UINT")) else "FP"]
    bad = next((i for i, v in enumerate(values) if not ok(v)), None)
    if bad is not None:
        raise ValidationError(f"input {name!r}: datatype {datatype} needs {what}, element "
                              f"{bad} is {values[bad]!r}", field=name)


_NUMPY_OF = {
    "BOOL": "?", "UINT8": "<u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8",
    "INT8": "<i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8",
    "FP16": "<f2", "FP32": "<f4", "FP64": "<f8",
}


def _decode_binary(name: str, datatype: str, raw: bytes) -> list[Any]:
    """One tensor of the binary data extension -> flat values (BYTES: 4-byte length prefixes)."""
    if datatype != "BYTES":
        dtype = np.dtype(_NUMPY_OF.get(datatype, "<f8"))
        if len(raw) % dtype.itemsize:
            raise ValidationError(f"input {name!r}: {len(raw)} bytes is not a whole number of "
                                  f"{datatype} values", field=name)
        return np.frombuffer(raw, dtype=dtype).tolist()
    values, pos = [], 0
    while pos < len(raw):
        if pos + 4 > len(raw):
            raise ValidationError(f"input {name!r}: truncated BYTES element", field=name)
        size = int.from_bytes(raw[pos:pos + 4], "little")
        chunk = raw[pos + 4:pos + 4 + size]
        if len(chunk) != size:
            raise ValidationError(f"input {name!r}: truncated BYTES element", field=name)
        try:
            values.append(chunk.decode("utf-8"))
        except UnicodeDecodeError:
            raise ValidationError(f"input {name!r}: BYTES element is not UTF-8",
                                  field=name) from None
        pos += 4 + size
    return values


def _attach_binary(inputs: list[Any], binary: bytes) -> None:
    """Fill ``data`` of inputs sent with ``binary_data_size`` from the bytes after the JSON."""
    pos = 0
    for item in inputs:
        params = item.get("parameters") if isinstance(item, dict) else None
        if not isinstance(params, dict) or "binary_data_size" not in params:
            continue
        size = params["binary_data_size"]
        name = str(item.get("name"))
        if not isinstance(size, int) or size < 0 or pos + size > len(binary):
            raise ValidationError(f"input {name!r}: binary_data_size {size!r} does not match "
                                  "the bytes sent", field=name)
        item["data"] = _decode_binary(name, str(item.get("datatype")), binary[pos:pos + size])
        pos += size
    if pos != len(binary):
        raise BadRequestError(f"{len(binary) - pos} bytes after the tensors are not claimed by "
                              "any input's binary_data_size")


def parse_v2_infer(body: bytes, content_type: str | None, limits: Limits,
                   header_length: str | None = None) -> V2Request:
    """``POST /v2/models/{name}/infer`` -> frame: one 1-D tensor per column, or one 2-D tensor.

    JSON tensors, or the binary data extension (what tritonclient sends by default): a JSON
    header of ``Inference-Header-Content-Length`` bytes followed by the raw tensors. A missing
    Content-Type means JSON, as the protocol has it (tritonclient sends none).
    """
    binary = b""
    if header_length is not None:
        if content_type:
            check_media_type(content_type, (*JSON_TYPES, "application/octet-stream"))
        try:
            split = int(header_length)
        except ValueError:
            raise BadRequestError(f"invalid Inference-Header-Content-Length {header_length!r}") from None
        if not 0 < split <= len(body):
            raise BadRequestError(f"Inference-Header-Content-Length {split} does not fit a "
                                  f"body of {len(body)} bytes")
        body, binary = body[:split], body[split:]
        if len(binary) > limits.max_body_bytes:
            raise PayloadTooLargeError(f"body is over the limit of {limits.max_body_bytes} bytes",
                                       limit=limits.max_body_bytes)
    elif content_type:
        check_media_type(content_type, JSON_TYPES)
    payload = decode_json(body, limits)
    if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), list):
        raise ValidationError("the body must be an object with an 'inputs' list", field="inputs")
    inputs = payload["inputs"]
    if not inputs:
        raise ValidationError("'inputs' is empty", field="inputs")
    _attach_binary(inputs, binary)
    columns: dict[str, Any] = {}
    rows: int | None = None
    for item in inputs:
        if not isinstance(item, dict):
            raise ValidationError("each input must be an object", field="inputs")
        name = item.get("name")
        missing = [k for k in ("name", "shape", "datatype", "data") if k not in item]
        if missing or not isinstance(name, str):
            raise ValidationError(f"input {name!r} lacks {missing or ['name']}",
                                  field=str(name or "inputs"))
        datatype, shape = item["datatype"], item["shape"]
        if not isinstance(datatype, str) or datatype not in V2_DATATYPES:
            raise ValidationError(f"input {name!r}: unknown datatype {datatype!r}", field=name)
        if (not isinstance(shape, list) or not 1 <= len(shape) <= 2
                or not all(isinstance(s, int) and s >= 0 for s in shape)):
            raise ValidationError(f"input {name!r}: shape must be [rows] or [rows, columns]",
                                  field=name)
        values = _flatten(item["data"])
        if shape[0] > limits.max_rows:
            _check_rows(shape[0], limits)
        if math.prod(shape) != len(values):
            raise ValidationError(f"input {name!r}: shape {shape} needs {math.prod(shape)} "
                                  f"values, got {len(values)}", field=name)
        _check_v2_values(name, datatype, values)
        if rows is not None and shape[0] != rows:
            raise ValidationError(f"input {name!r} has {shape[0]} rows, others {rows}",
                                  field=name)
        rows = shape[0]
        if len(shape) == 2 and shape[1] != 1:
            if len(inputs) != 1:
                raise ValidationError(f"input {name!r}: a 2-D tensor must be the only input",
                                      field=name)
            frame = pd.DataFrame(np.array(values, dtype=object).reshape(shape).tolist())
            columns = {}
            break
        columns[name] = values
    else:
        frame = pd.DataFrame(columns)
    _check_rows(len(frame), limits)
    outputs = payload.get("outputs") or []
    if not isinstance(outputs, list) or not all(isinstance(o, dict) and "name" in o
                                                for o in outputs):
        raise ValidationError("'outputs' must be a list of objects with a 'name'",
                              field="outputs")
    request_id = payload.get("id")
    return V2Request(frame=frame, id=str(request_id) if request_id is not None else None,
                     outputs=[str(o["name"]) for o in outputs])


def _v2_datatype(array: np.ndarray) -> str:
    kind = array.dtype.kind
    if kind == "b":
        return "BOOL"
    if kind in "iu":
        return "INT64"
    if kind == "f":
        return "FP64"
    return "BYTES"


def v2_tensor(name: str, values: np.ndarray) -> dict[str, Any]:
    array = np.asarray(values)
    return {"name": name, "datatype": _v2_datatype(array), "shape": list(array.shape),
            "data": jsonable(array.reshape(-1))}


def v2_response(model: str, version: int, request_id: str | None,
                outputs: dict[str, np.ndarray]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model_name": model,
        "model_version": str(version),
        "outputs": [v2_tensor(n, a) for n, a in outputs.items()],
    }
    if request_id is not None:
        body["id"] = request_id
    return body


_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})
_FALSE = frozenset({"0", "false", "f", "no", "n", "off"})


def query_flag(name: str, value: str | None) -> bool:
    """A boolean query parameter (absent: False), spelled as pydantic reads a bool; anything
    else is a 422 naming the parameter."""
    if value is None:
        return False
    spelled = value.strip().lower()
    if spelled in _TRUE:
        return True
    if spelled in _FALSE:
        return False
    raise ValidationError(f"query parameter {name!r} must be true or false, not {value[:40]!r}",
                          field=name)


def jsonable(values: Any) -> list[Any]:
    """Predictions as JSON values (NaN -> null, NumPy scalars -> Python)."""
    array = np.asarray(values)
    if array.ndim > 1:
        return [jsonable(row) for row in array]
    if array.dtype.kind == "f":
        return [None if math.isnan(v) else v for v in array.tolist()]
    if array.dtype.kind == "M":
        return [str(v) for v in array.tolist()]
    return array.tolist()
