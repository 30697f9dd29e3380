"""Every family AutoML trains, for every task, compiled to ONNX and checked against itself."""

from __future__ import annotations

import numpy as np
import pytest

from raymlops.registry.compiled import compile_model
from raymlops.training.families import families_for, train_steps
from raymlops.training.objectives import TASKS
from tests.unit.test_families import PARAMS, _task_data

CASES = [(t, f) for t in TASKS for f in families_for(t)]


def _trained(task: str, family: str):
    data = _task_data(task)
    *_, (_, model, _) = train_steps(family, PARAMS[family], data, 3, seed=1)
    return data, model


@pytest.mark.parametrize(("task", "family"), CASES)
def test_each_family_compiles_and_matches_or_says_why_not(task: str, family: str) -> None:
    data, model = _trained(task, family)
    rows = data.X_valid[data.columns_for(family)]
    kind = "regression" if task == "regression" else "classification"
    blob, report = compile_model(model, rows, kind, y=data.y_valid)
    assert report.rows_checked == len(rows)
    assert blob is not None and report.sha256 and report.converter.get("onnxruntime")
    if family in ("logreg", "ridge", "mlp", "hgb"):  # exact up to float32 rounding
        assert report.serves, report.reason
        if task == "regression":
            assert report.max_rel_diff <= 1e-5
        else:
            assert report.label_agreement == 1.0 and report.max_abs_diff <= 1e-5
    else:  # the forest: float32 thresholds, checked on labels and the gate metric
        assert report.label_agreement is None or report.label_agreement >= 0.99
        assert report.metric is not None and report.metric_diff is not None
        assert report.serves == (report.metric_diff <= 1e-4 and (
            report.label_agreement is None or report.label_agreement >= 0.999))


def test_the_compiled_model_answers_like_the_original() -> None:
    from raymlops.registry.compiled import OnnxModel

    data, model = _trained("multiclass", "logreg")
    rows = data.X_valid[data.columns_for("logreg")]
    blob, report = compile_model(model, rows, "classification")
    compiled = OnnxModel(blob, kind="sklearn", input_names=list(rows.columns),
                         classes=model.classes_.tolist(), task="multiclass")
    labels, proba = compiled.outputs(rows.head(5))
    assert labels.tolist() == model.predict(rows.head(5)).tolist()
    np.testing.assert_allclose(proba, model.predict_proba(rows.head(5)), atol=1e-5)


def test_a_model_with_no_rows_to_check_is_not_compiled() -> None:
    data, model = _trained("binary", "logreg")
    blob, report = compile_model(model, data.X_valid.head(0), "classification")
    assert blob is None and not report.serves and "no rows" in report.reason


def test_missing_numbers_are_refused_by_the_compiled_model_when_the_original_refuses_them() -> None:
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from raymlops.registry.compiled import OnnxModel

    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    model = LogisticRegression().fit(X, [0, 0, 1, 1])
    blob, report = compile_model(model, X, "classification")
    assert report.serves and report.accepts_nan is False
    compiled = OnnxModel(blob, kind="sklearn", input_names=["a", "b"], classes=[0, 1],
                         task="binary", matrix_input=True, accepts_nan=report.accepts_nan)
    with pytest.raises(ValueError, match="NaN"):
        compiled.predict(X.assign(a=[np.nan, 1.0, 2.0, 3.0]))
    assert compiled.predict(X).tolist() == model.predict(X).tolist()
