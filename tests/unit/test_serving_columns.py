"""The serving hot path on plain columns answers exactly as the pandas path, or hands over to it.

A loaded version of a compiled AutoML-style Pipeline (text and numeric inputs, features from
an online cache) is asked the same requests both ways: as a DataFrame (the pandas path) and as
``Columns`` (the hot path). Same predictions, same probabilities, same errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from raymlops.exceptions import ValidationError
from raymlops.registry.compiled import load_compiled
from raymlops.registry.formats import Predictor
from raymlops.serving.columns import Columns, Prepared, check_columns
from raymlops.serving.enrich import Enrichment
from raymlops.serving.protocol import Limits, parse_invocations
from raymlops.serving.schema import ColumnSpec, InputSchema
from raymlops.serving.version import LoadedVersion
from tests.unit.compiled_versions import compiled_version

WEATHER = {"JFK": 30.0, "EWR": 70.0}


class Cache:
    def get(self, rows: list[dict]) -> dict:
        return {"rows": [{**r, "weather__temp": WEATHER.get(r["origin"])} for r in rows]}

    def stop(self) -> None:
        pass


def _predictor(family: str) -> Predictor:
    model, meta, _, onnx, _ = compiled_version(family)
    return Predictor(model, meta, "m", 1, compiled=load_compiled(onnx, model, meta))


@pytest.fixture(scope="module", params=["logreg", "hgb"])
def state(request) -> LoadedVersion:
    plan = {"service": "delay", "views": [{"view": {"name": "weather"},
                                           "entity": {"join_keys": {"origin": "string"}},
                                           "features": ["temp"]}]}
    return LoadedVersion.of(_predictor(request.param), Enrichment.from_plan(plan, Cache()))


GOOD = [
    [{"origin": "JFK", "carrier": "UA", "hour": 7.0}],
    [{"origin": "EWR", "carrier": "AA", "hour": 20}, {"origin": "JFK", "carrier": "DL", "hour": 6.5}],
    [{"origin": "EWR", "carrier": "XX", "hour": 12.0}],  # a carrier never seen: the encoder's job
]


def _both(state: LoadedVersion, records: list[dict]):
    body = json.dumps({"dataframe_records": records}).encode()
    columns = parse_invocations(body, "application/json", Limits(), as_columns=True)
    frame = parse_invocations(body, "application/json", Limits())
    assert isinstance(columns, Columns) and isinstance(frame, pd.DataFrame)
    return columns, frame


@pytest.mark.parametrize("records", GOOD)
def test_the_hot_path_answers_as_the_pandas_path(state: LoadedVersion, records) -> None:
    columns, frame = _both(state, records)
    fast, slow = state.prepare(columns), state.prepare(frame)
    assert isinstance(fast, Prepared) and isinstance(slow, pd.DataFrame)
    pd.testing.assert_frame_equal(fast.to_frame(), slow.reset_index(drop=True), check_dtype=False)
    (labels_fast, proba_fast), (labels_slow, proba_slow) = state.predict(fast, True), state.predict(slow, True)
    assert labels_fast.tolist() == labels_slow.tolist()
    np.testing.assert_allclose(proba_fast, proba_slow, atol=1e-6)
    original = state.predictor.model.predict_proba(slow)
    np.testing.assert_allclose(proba_fast, original, atol=1e-5)


def test_a_batch_of_hot_requests_is_one_table(state: LoadedVersion) -> None:
    parts = [state.prepare(_both(state, records)[0]) for records in GOOD]
    batch = Prepared.concat(parts)
    labels, proba = state.predict(batch, True)
    singles = [state.predict(p, True)[1] for p in parts]
    assert len(labels) == len(batch) == 4
    np.testing.assert_allclose(proba, np.vstack(singles), atol=1e-7)


@pytest.mark.parametrize(("records", "field"), [
    ([{"origin": "JFK", "carrier": "UA"}], "hour"),  # missing
    ([{"origin": "JFK", "carrier": "UA", "hour": "7"}], "hour"),  # a string for a number
    ([{"origin": "JFK", "carrier": 3, "hour": 7.0}], "carrier"),  # a number for a string
    ([{"origin": "JFK", "carrier": "UA", "hour": None}], "hour"),  # null in a required field
    ([{"origin": "JFK", "carrier": "UA", "hour": True}], "hour"),  # a boolean is no number
    ([{"origin": "JFK", "carrier": "UA", "hour": 7.0, "weather__temp": 1.0}], "weather__temp"),
    ([{"carrier": "UA", "hour": 7.0}], "origin"),  # the entity key
])
def test_bad_requests_get_the_pandas_paths_error(state: LoadedVersion, records, field) -> None:
    columns, frame = _both(state, records)
    errors = []
    for given in (columns, frame):
        with pytest.raises(ValidationError) as info:
            state.prepare(given)
        errors.append((info.value.context.get("field"), info.value.message))
    assert errors[0] == errors[1] and errors[0][0] == field


def test_nested_values_stay_on_the_pandas_path() -> None:
    assert Columns.from_records([{"a": [1, 2]}]) is None
    assert Columns.from_records([{"a": 1.0}, {"b": "x"}]).data == {"a": [1.0, None], "b": [None, "x"]}


def test_check_columns_takes_only_what_validate_frame_accepts_unchanged() -> None:
    schema = InputSchema((ColumnSpec("x", "double"), ColumnSpec("n", "long"), ColumnSpec("s", "string", False)))
    assert check_columns({"x": [1, 2.5], "n": [3, 4]}, 2, schema) == {"x": [1, 2.5], "n": [3, 4], "s": [None, None]}
    assert check_columns({"x": [float("nan")], "n": [1]}, 1, schema) is None  # NaN is a null
    assert check_columns({"x": [1.0], "n": [1.0]}, 1, schema) is None  # pandas decides on 1.0
    assert check_columns({"x": [1.0], "n": [1], "z": [0]}, 1, schema) is None
    assert check_columns({"x": [1.0], "n": [1], "z": [0]}, 1, schema, passthrough=["z"])["z"] == [0]
