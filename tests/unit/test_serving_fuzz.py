"""Property-based fuzz of the request path a replica runs, on both protocols, without Ray.

Hypothesis generates JSON bodies (shaped like the protocols' requests, with any JSON value
where a value goes) and raw bytes; each goes through what a replica does with it: parse,
validate and enrich (hot path and pandas path), predict with the compiled model. The
contract: every failure is a typed error that HTTP maps to a 4xx, and a model that raises on
validated input is answered with a 422 (``_model_error``), so no body can make a 5xx."""

from __future__ import annotations

import json

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raymlops.exceptions import RaymlopsError
from raymlops.serving.protocol import Limits, parse_invocations, parse_v2_infer
from raymlops.serving.version import LoadedVersion
from tests.unit.test_serving_columns import state  # noqa: F401 - the fixture: compiled logreg and HGB

LIMITS = Limits(max_body_bytes=64 * 1024, max_rows=50)
FIELDS = ["origin", "carrier", "hour", "weather__temp", "zz"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20),
                    st.floats(allow_nan=False), st.text(max_size=8), st.sampled_from(["JFK", "UA", "EWR"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                        st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                      max_leaves=8)
records = st.lists(st.dictionaries(st.sampled_from(FIELDS), st.one_of(scalars, values), max_size=5),
                   min_size=0, max_size=4)
mlflow_bodies = st.one_of(
    st.fixed_dictionaries({"dataframe_records": st.one_of(records, values)}),
    st.fixed_dictionaries({"dataframe_split": st.fixed_dictionaries(
        {"columns": st.one_of(st.lists(st.sampled_from(FIELDS), max_size=4), values),
         "data": st.one_of(st.lists(st.lists(scalars, max_size=4), max_size=3), values)})}),
    st.fixed_dictionaries({"inputs": st.one_of(st.dictionaries(st.sampled_from(FIELDS),
                                                               st.one_of(scalars, st.lists(scalars, max_size=3)),
                                                               max_size=4), values)}),
    st.dictionaries(st.text(max_size=16), values, max_size=3),
    values,
)
tensors = st.fixed_dictionaries(
    {"name": st.one_of(st.sampled_from(FIELDS), values),
     "datatype": st.one_of(st.sampled_from(["FP64", "FP32", "INT64", "BYTES", "BOOL", "X"]), values),
     "shape": st.one_of(st.lists(st.integers(-2, 5), max_size=3), values),
     "data": st.one_of(st.lists(scalars, max_size=4), st.lists(st.lists(scalars, max_size=2), max_size=2), values)},
    optional={"parameters": values})
v2_bodies = st.one_of(st.fixed_dictionaries({"inputs": st.lists(tensors, max_size=4)},
                                            optional={"id": values, "outputs": values}), values)


def _serve(state: LoadedVersion, frame) -> None:
    """What a replica does after parsing; a model's own exception becomes a 422 there."""
    for given_frame in ([frame, frame.to_frame()] if hasattr(frame, "data") else [frame]):
        checked = state.prepare(given_frame)
        try:
            state.predict(checked, True)
        except RaymlopsError:
            raise
        except Exception:  # noqa: BLE001, S110 - ModelServer answers these with 422 (_model_error)
            pass


def _must_be_4xx(call) -> None:
    try:
        call()
    except RaymlopsError as exc:
        assert 400 <= exc.http_status < 500, exc


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                         HealthCheck.too_slow])


@FUZZ
@given(body=mlflow_bodies)
def test_mlflow_bodies_get_4xx_or_an_answer(state: LoadedVersion, body) -> None:
    raw = json.dumps(body).encode()
    _must_be_4xx(lambda: _serve(state, parse_invocations(raw, "application/json", LIMITS, as_columns=True)))


@FUZZ
@given(body=v2_bodies)
def test_v2_bodies_get_4xx_or_an_answer(state: LoadedVersion, body) -> None:
    raw = json.dumps(body).encode()
    _must_be_4xx(lambda: _serve(state, parse_v2_infer(raw, "application/json", LIMITS).frame))


@FUZZ
@given(raw=st.binary(max_size=200), csv=st.booleans())
def test_any_bytes_get_4xx_or_an_answer(state: LoadedVersion, raw: bytes, csv: bool) -> None:
    media = "text/csv" if csv else "application/json"
    _must_be_4xx(lambda: _serve(state, parse_invocations(raw, media, LIMITS, as_columns=True)))
    if not csv:
        _must_be_4xx(lambda: _serve(state, parse_v2_infer(raw, media, LIMITS).frame))


def test_a_valid_request_is_answered(state: LoadedVersion) -> None:
    raw = json.dumps({"dataframe_records": [{"origin": "JFK", "carrier": "UA", "hour": 7.0}]}).encode()
    labels, proba = state.predict(state.prepare(parse_invocations(raw, "application/json", LIMITS,
                                                                 as_columns=True)), True)
    assert len(labels) == 1 and proba.shape == (1, 2)
    assert isinstance(state.prepare(pd.DataFrame({"origin": ["JFK"], "carrier": ["UA"], "hour": [7.0]})),
                      pd.DataFrame)
