"""The HTTP contract's pure parts, without Ray: payload parsing, signature validation, errors.

Each failure case asserts the typed error (hence the HTTP status) *and* the field it names,
because "422 naming the field" is the contract.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from mlflow.models import infer_signature

from raymlops.exceptions import (
    BadRequestError,
    PayloadTooLargeError,
    RaymlopsError,
    UnsupportedMediaTypeError,
    ValidationError,
)
from raymlops.serving.protocol import (
    Limits,
    check_content_length,
    jsonable,
    parse_invocations,
    parse_v2_infer,
    v2_response,
)
from raymlops.serving.schema import ColumnSpec, InputSchema, validate_frame

JSON = "application/json"
LIMITS = Limits(max_body_bytes=10_000, max_rows=50)
FRAME = pd.DataFrame({"temp": [50.5, 60.0], "hour": [3, 4], "origin": ["JFK", "EWR"],
                      "late": [True, False]})
SCHEMA = InputSchema.from_signature(infer_signature(FRAME, np.array([0, 1])).to_dict())


def body(obj: object) -> bytes:
    return json.dumps(obj).encode()


def parse(obj: object, content_type: str = JSON) -> pd.DataFrame:
    return validate_frame(parse_invocations(body(obj), content_type, LIMITS), SCHEMA)


# -- every MLflow scoring format gives the same frame ------------------------------------------

MLFLOW_PAYLOADS = {
    "dataframe_split": {"dataframe_split": FRAME.to_dict(orient="split")},
    "dataframe_split_no_index": {"dataframe_split": {"columns": list(FRAME.columns),
                                                     "data": FRAME.values.tolist()}},
    "dataframe_records": {"dataframe_records": FRAME.to_dict(orient="records")},
    "instances_records": {"instances": FRAME.to_dict(orient="records")},
    "instances_rows": {"instances": FRAME.values.tolist()},
    "inputs_columns": {"inputs": FRAME.to_dict(orient="list")},
    "inputs_records": {"inputs": FRAME.to_dict(orient="records")},
}


@pytest.mark.parametrize("fmt", sorted(MLFLOW_PAYLOADS))
def test_every_mlflow_format_parses_to_the_same_typed_frame(fmt: str) -> None:
    frame = parse(MLFLOW_PAYLOADS[fmt])
    pd.testing.assert_frame_equal(frame.reset_index(drop=True), FRAME, check_dtype=False)
    assert frame["temp"].dtype == np.float64 and frame["hour"].dtype == np.int64


def test_mlflow_client_payload_is_understood() -> None:
    """What MLflow's own client sends for a DataFrame (``dump_input_data``)."""
    from mlflow.utils.proto_json_utils import dump_input_data

    frame = parse(json.loads(dump_input_data(FRAME)))
    assert list(frame["origin"]) == ["JFK", "EWR"]


def test_csv_is_accepted_like_mlflows_server() -> None:
    csv = FRAME.to_csv(index=False).encode()
    frame = validate_frame(parse_invocations(csv, "text/csv", LIMITS), SCHEMA)
    assert list(frame["hour"]) == [3, 4]


# -- transport errors: 400, 413, 415 ---------------------------------------------------------

@pytest.mark.parametrize("raw", [b"not json", b"{\"inputs\": [1,", b"\xff\xfe"])
def test_non_json_is_400(raw: bytes) -> None:
    with pytest.raises(BadRequestError):
        parse_invocations(raw, JSON, LIMITS)


@pytest.mark.parametrize("opening", ["[", "{\"a\": ", "{\"inputs\": ["])
def test_json_nested_past_any_format_is_400_not_a_crash(opening: str) -> None:
    """A body of brackets exhausts Python's JSON recursion: a clear 400, not a 500."""
    closing = {"[": "]", "{\"a\": ": "}", "{\"inputs\": [": "]}"}[opening]
    body = (opening * 100_000 + "1" + closing * 100_000).encode()
    roomy = Limits(max_body_bytes=10 * len(body), max_rows=LIMITS.max_rows)  # under the size limit
    for parse in (parse_invocations, parse_v2_infer):
        with pytest.raises(BadRequestError, match="nested"):
            parse(body, JSON, roomy)


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/xml",
                                          "application/json; charset=latin-1"])
def test_wrong_content_type_is_415(content_type: str | None) -> None:
    with pytest.raises(UnsupportedMediaTypeError):
        parse_invocations(body(MLFLOW_PAYLOADS["inputs_columns"]), content_type, LIMITS)


def test_json_with_charset_is_fine() -> None:
    parse(MLFLOW_PAYLOADS["dataframe_records"], "application/json; charset=utf-8")


def test_oversize_body_and_too_many_rows_are_413() -> None:
    with pytest.raises(PayloadTooLargeError):
        check_content_length(str(LIMITS.max_body_bytes + 1), LIMITS)
    with pytest.raises(PayloadTooLargeError):
        parse_invocations(b" " * (LIMITS.max_body_bytes + 1), JSON, LIMITS)
    rows = [FRAME.iloc[0].to_dict()] * (LIMITS.max_rows + 1)
    with pytest.raises(PayloadTooLargeError):
        parse_invocations(body({"dataframe_records": rows}), JSON, LIMITS)
    with pytest.raises(PayloadTooLargeError):
        parse_invocations(body({"inputs": {"temp": [1.0] * (LIMITS.max_rows + 1)}}), JSON,
                          LIMITS)


# -- shape errors: 422 naming the key --------------------------------------------------------

@pytest.mark.parametrize("payload, field", [
    ([1, 2], "body"),
    ({"rows": []}, "rows"),
    ({"inputs": {"temp": [1.0]}, "instances": []}, "dataframe_records"),
    ({"dataframe_split": {"columns": ["temp"]}}, "dataframe_split"),
    ({"dataframe_records": {"temp": 1}}, "dataframe_records"),
    ({"instances": [[1, 2], [3]]}, "instances"),
    ({"inputs": {"temp": [1.0, 2.0], "hour": [1]}}, "hour"),
    ({"inputs": {"temp": [[1.0]]}}, "temp"),
    ({"inputs": []}, "inputs"),
    ({"inputs": {"temp": [1.0]}, "params": {"k": 1}}, "params"),
])
def test_malformed_shapes_are_422_naming_the_key(payload: object, field: str) -> None:
    if isinstance(payload, dict) and "instances" in payload and "inputs" in payload:
        field = "instances"
    with pytest.raises(ValidationError) as info:
        parse_invocations(body(payload), JSON, LIMITS)
    assert info.value.http_status == 422
    assert info.value.context["field"] == field, info.value.message


# -- signature validation: missing, extra, wrong type -> 422 naming the field ----------------

def records(**changes: object) -> dict:
    row = {"temp": 50.5, "hour": 3, "origin": "JFK", "late": True}
    row.update(changes)
    return {"dataframe_records": [{k: v for k, v in row.items() if v is not ...}]}


@pytest.mark.parametrize("payload, field", [
    (records(temp=...), "temp"),
    (records(humid=0.3), "humid"),
    (records(temp="hot"), "temp"),
    (records(temp=True), "temp"),
    (records(hour=3.5), "hour"),
    (records(hour="3"), "hour"),
    (records(origin=7), "origin"),
    (records(late="yes"), "late"),
    (records(temp=None), "temp"),
    ({"instances": [[50.5, 3, "JFK"]]}, "inputs"),
])
def test_signature_violations_are_422_naming_the_field(payload: dict, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse(payload)
    assert info.value.context["field"] == field
    assert field in info.value.message or field == "inputs"


def test_ints_are_accepted_for_doubles_and_integral_floats_for_longs_are_not() -> None:
    frame = parse(records(temp=50))
    assert frame["temp"].dtype == np.float64 and frame["temp"].iloc[0] == 50.0


def test_optional_columns_may_be_null_or_missing() -> None:
    schema = InputSchema((ColumnSpec("a", "double"), ColumnSpec("b", "double", required=False)))
    frame = validate_frame(pd.DataFrame({"a": [1.0, 2.0], "b": [None, 3.0]}), schema)
    assert np.isnan(frame["b"].iloc[0])
    frame = validate_frame(pd.DataFrame({"a": [1.0]}), schema)
    assert list(frame.columns) == ["a", "b"] and np.isnan(frame["b"].iloc[0])


def test_datetime_columns_parse_iso_strings_and_refuse_garbage() -> None:
    schema = InputSchema((ColumnSpec("at", "datetime"),))
    frame = validate_frame(pd.DataFrame({"at": ["2013-01-01T05:00:00Z"]}), schema)
    assert str(frame["at"].dt.tz) == "UTC"
    with pytest.raises(ValidationError) as info:
        validate_frame(pd.DataFrame({"at": ["yesterday"]}), schema)
    assert info.value.context["field"] == "at"


def test_positional_rows_take_the_signature_names() -> None:
    frame = parse({"instances": [[50.5, 3, "JFK", True]]})
    assert list(frame.columns) == SCHEMA.names


def test_tensor_signature_falls_back_to_feature_names() -> None:
    sig = infer_signature(np.zeros((2, 3), dtype="float32"), np.array([0, 1])).to_dict()
    schema = InputSchema.from_signature(sig, ["a", "b", "c"])
    assert schema is not None and schema.names == ["a", "b", "c"]
    assert InputSchema.from_signature(sig, None) is None



@pytest.mark.parametrize("columns", [
    {"a": [1.5, 2.0], "b": [float("nan"), -3.25]},  # floats only: the one-block path
    {"a": [1.5, 2.0], "b": [1, 2]},  # an int column: pandas' per-column inference
    {"a": [1.5, None], "b": [True, False]},
    {"a": [1.5], "b": ["x"]},
    {"a": 2.5, "b": 1.0},  # scalars are one-row columns
])
def test_inputs_columns_parse_to_what_pandas_builds(columns: dict) -> None:
    """The float-only shortcut of ``inputs`` builds the very frame ``pd.DataFrame`` would."""
    payload = json.dumps({"inputs": columns}).encode()  # NaN: Python's json writes and reads it
    frame = parse_invocations(payload, JSON, LIMITS)
    expected = pd.DataFrame({k: v if isinstance(v, list) else [v] for k, v in columns.items()})
    pd.testing.assert_frame_equal(frame, expected)


def test_fast_validation_path_equals_the_per_column_path() -> None:
    """Numeric, complete frames take the vectorized path; its answer (order, dtypes) and its
    refusals (a NaN in a required column, named with its row) match the per-column path."""
    schema = InputSchema((ColumnSpec("x", "double"), ColumnSpec("n", "long"),
                          ColumnSpec("f", "float"), ColumnSpec("ok", "boolean")))
    frame = pd.DataFrame({"ok": [True, False], "f": [1, 2], "n": [3, 4], "x": [0.5, 1.5]})
    fast = validate_frame(frame, schema)
    assert list(fast.columns) == ["x", "n", "f", "ok"]
    assert [str(t) for t in fast.dtypes] == ["float64", "int64", "float32", "bool"]
    slow = pd.DataFrame({s.name: c for s, c in zip(  # noqa: B905 - four columns, four series
        schema.columns, (frame["x"], frame["n"].astype(np.int64), frame["f"].astype(np.float32),
                         frame["ok"]))})
    pd.testing.assert_frame_equal(fast, slow)
    in_order = frame[["x", "n", "f", "ok"]].astype({"n": np.int64, "f": np.float32})
    assert validate_frame(in_order, schema) is in_order  # nothing to convert: no copy
    with pytest.raises(ValidationError) as info:
        validate_frame(frame.assign(x=[0.5, np.nan]), schema)
    assert info.value.context["field"] == "x" and info.value.context["row"] == 1

# -- Open Inference Protocol v2 -------------------------------------------------------------

def v2(inputs: list, **extra: object) -> bytes:
    return body({"inputs": inputs, **extra})


def test_v2_one_tensor_per_column() -> None:
    parsed = parse_v2_infer(v2([
        {"name": "temp", "shape": [2], "datatype": "FP64", "data": [50.5, 60.0]},
        {"name": "hour", "shape": [2, 1], "datatype": "INT64", "data": [[3], [4]]},
        {"name": "origin", "shape": [2], "datatype": "BYTES", "data": ["JFK", "EWR"]},
        {"name": "late", "shape": [2], "datatype": "BOOL", "data": [True, False]},
    ], id="r1", outputs=[{"name": "predict_proba"}]), JSON, LIMITS)
    frame = validate_frame(parsed.frame, SCHEMA)
    pd.testing.assert_frame_equal(frame, FRAME, check_dtype=False)
    assert parsed.id == "r1" and parsed.outputs == ["predict_proba"]


def test_v2_one_2d_tensor_is_positional() -> None:
    schema = InputSchema((ColumnSpec("a", "double"), ColumnSpec("b", "double")))
    parsed = parse_v2_infer(v2([{"name": "input-0", "shape": [2, 2], "datatype": "FP64",
                                 "data": [1.0, 2.0, 3.0, 4.0]}]), JSON, LIMITS)
    frame = validate_frame(parsed.frame, schema)
    assert list(frame.columns) == ["a", "b"] and list(frame["b"]) == [2.0, 4.0]


@pytest.mark.parametrize("inputs, field", [
    ([{"name": "temp", "shape": [2], "datatype": "FP64", "data": [1.0]}], "temp"),
    ([{"name": "temp", "shape": [1], "datatype": "FP64", "data": ["x"]}], "temp"),
    ([{"name": "temp", "shape": [1], "datatype": "FP99", "data": [1.0]}], "temp"),
    ([{"name": "temp", "shape": [1], "data": [1.0]}], "temp"),
    ([{"name": "a", "shape": [1], "datatype": "FP64", "data": [1.0]},
      {"name": "b", "shape": [2], "datatype": "FP64", "data": [1.0, 2.0]}], "b"),
    ([], "inputs"),
])
def test_v2_malformed_tensors_are_422_naming_the_input(inputs: list, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_v2_infer(v2(inputs), JSON, LIMITS)
    assert info.value.context["field"] == field


def _binary_request(inputs: list[tuple[str, str, np.ndarray | list[str]]]) -> tuple[bytes, str]:
    """What tritonclient sends with binary_data=True: JSON header + raw tensors."""
    header, raw = [], b""
    for name, datatype, values in inputs:
        if datatype == "BYTES":
            blob = b"".join(len(v.encode()).to_bytes(4, "little") + v.encode() for v in values)
        else:
            blob = np.asarray(values).tobytes()
        header.append({"name": name, "shape": [len(values)], "datatype": datatype,
                       "parameters": {"binary_data_size": len(blob)}})
        raw += blob
    head = body({"inputs": header})
    return head + raw, str(len(head))


def test_v2_binary_data_extension() -> None:
    payload, length = _binary_request([
        ("temp", "FP64", np.array([50.5, 60.0])), ("hour", "INT64", np.array([3, 4])),
        ("origin", "BYTES", ["JFK", "EWR"]), ("late", "BOOL", np.array([True, False]))])
    parsed = parse_v2_infer(payload, None, LIMITS, header_length=length)
    pd.testing.assert_frame_equal(validate_frame(parsed.frame, SCHEMA), FRAME, check_dtype=False)
    with pytest.raises(ValidationError) as info:  # claims more bytes than were sent
        parse_v2_infer(payload[:-1], None, LIMITS, header_length=length)
    assert info.value.context["field"] == "late"
    with pytest.raises(BadRequestError):
        parse_v2_infer(payload + b"xx", None, LIMITS, header_length=length)
    with pytest.raises(BadRequestError):
        parse_v2_infer(payload, None, LIMITS, header_length="999999")


def test_v2_content_type_json_or_none_and_csv_is_415() -> None:
    tensor = [{"name": "temp", "shape": [1], "datatype": "FP64", "data": [1.0]}]
    assert len(parse_v2_infer(v2(tensor), None, LIMITS).frame) == 1
    with pytest.raises(UnsupportedMediaTypeError):
        parse_v2_infer(b"a\n1", "text/csv", LIMITS)


def test_v2_response_and_json_values() -> None:
    out = v2_response("m", 3, "r1", {"predict": np.array([0, 1]),
                                     "predict_proba": np.array([[0.9, 0.1], [0.2, 0.8]])})
    assert out["model_version"] == "3" and out["id"] == "r1"
    assert out["outputs"][0] == {"name": "predict", "datatype": "INT64", "shape": [2],
                                 "data": [0, 1]}
    assert out["outputs"][1]["shape"] == [2, 2] and out["outputs"][1]["datatype"] == "FP64"
    assert jsonable(np.array([1.5, np.nan])) == [1.5, None]


# -- fuzz: whatever the bytes, the error is typed and never a 5xx ----------------------------

def test_fuzzed_payloads_never_raise_an_untyped_error() -> None:
    rng = np.random.default_rng(7)
    atoms: list[object] = [None, True, 1, -2.5, "x", "", [], {}, [1, "a"], {"temp": "x"},
                           float("1e308"), [[1.0, 2.0, 3.0, 4.0]], {"data": [[1]]}]
    keys = ["dataframe_split", "dataframe_records", "instances", "inputs", "params", "x"]
    seen = set()
    for _ in range(2000):
        payload: object = {str(rng.choice(keys)): atoms[rng.integers(len(atoms))]
                           for _ in range(rng.integers(0, 3))}
        if rng.random() < 0.2:
            payload = atoms[rng.integers(len(atoms))]
        try:
            parse(payload)
            seen.add(200)
        except RaymlopsError as exc:
            assert 400 <= exc.http_status < 500, exc
            seen.add(exc.http_status)
    assert {400, 422} & seen and 422 in seen
