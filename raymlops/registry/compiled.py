"""Compiled inference: a registered model also as ONNX, checked against the original.

Why: the model users serve is a scikit-learn Pipeline (ColumnTransformer + estimator) or the
torch MLP, and on one row its Python call costs milliseconds (pandas, validation, one
estimator call per step) where ONNX Runtime answers in tens of microseconds. A compiled model
is only worth serving if it answers as the original does, so every conversion is checked on
rows the model has seen (its input example plus a sample of its training or validation
rows), and the measured differences are kept with the version:

- linear models and the MLP must agree exactly up to float32 rounding: labels equal,
  probabilities within 1e-5 (a regression within 1e-5 relative);
- random forests compile with float32 split thresholds (skl2onnx), so a row that sits on a
  split can move to the other branch in one tree: they serve compiled when labels agree on
  >= 99.9% of the check rows and, given the rows' labels, the gate metric differs by <= 1e-4;
- HistGradientBoosting compiles through our own converter (:mod:`.onnx_hgb`, float64
  thresholds, categorical splits as set membership) and is held to the same gate.

A model that does not convert, or does not match, is served by its original flavour; the
report says why. Nothing here loads pickles: ONNX is a protobuf graph of operators.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from raymlops.registry.formats import digest

__all__ = ["CompileReport", "OnnxModel", "compile_model", "load_compiled", "load_compiled_alone",
           "onnx_inputs"]

EXACT_TOLERANCE = 1e-5
TREE_LABEL_AGREEMENT = 0.999
TREE_METRIC_TOLERANCE = 1e-4
_TREE_NAMES = ("Forest", "Tree", "Boosting", "Extra")


@dataclass
class CompileReport:
    """What compiling a version found: whether the compiled model serves, and why (not)."""

    format: str = "onnx"
    serves: bool = False
    reason: str = ""
    rows_checked: int = 0
    label_agreement: float | None = None
    max_abs_diff: float | None = None
    max_rel_diff: float | None = None
    metric: str | None = None
    metric_diff: float | None = None
    sha256: str | None = None
    seconds: float = 0.0
    converter: dict[str, str] = field(default_factory=dict)
    # Whether the original answers rows with missing numbers. ONNX Runtime computes on NaN
    # where a logistic regression, say, raises: the compiled model then refuses them too.
    accepts_nan: bool = True
    # What OnnxModel needs besides the bytes, so a scoring process can run the compiled model
    # without loading the original (for scikit-learn, loading it imports all of scikit-learn
    # through skops: ~1.7 s of a batch actor's start). Absent in versions registered before.
    kind: str | None = None
    input_names: list[str] | None = None
    classes: list[Any] | None = None
    onnx_task: str | None = None
    matrix_input: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _estimator_of(model: Any) -> Any:
    steps = getattr(model, "steps", None)
    return steps[-1][1] if steps else model


def _is_tree_ensemble(model: Any) -> bool:
    return any(part in type(_estimator_of(model)).__name__ for part in _TREE_NAMES)


def _is_torch(model: Any) -> bool:
    return any(c.__module__.startswith("torch.nn") for c in type(model).__mro__)


def onnx_inputs(frame: pd.DataFrame, names: list[str],
                doubles: frozenset[str] | set[str] = frozenset()) -> dict[str, np.ndarray]:
    """Session inputs for a scikit-learn model: one ``[n, 1]`` column per input, numbers as
    float32 (float64 for the inputs named in ``doubles``) and text as strings (typed by
    ``is_numeric_dtype``: pandas 3 calls text ``str``)."""
    out = {}
    for name in names:
        column = frame[name]
        if pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype):
            dtype = np.float64 if name in doubles else np.float32
            out[name] = column.to_numpy(dtype=dtype, na_value=np.nan).reshape(-1, 1)
        else:  # numpy, not pandas, per value: a pandas round trip cost ~0.25 ms per request
            values = column.to_numpy(dtype=object)
            out[name] = np.array(["" if v is None or v != v else str(v) for v in values],
                                 dtype=object).reshape(-1, 1)
    return out


class OnnxModel:
    """An ONNX Runtime session with the original model's API (predict / predict_proba).

    ``threads`` sizes ONNX Runtime's pool to the CPUs the caller has (a replica's share):
    its default, one thread per core of the machine, oversubscribes a packed node."""

    def __init__(self, data: bytes, *, kind: str, input_names: list[str],
                 classes: list[Any] | None, task: str, threads: int = 1,
                 matrix_input: bool | None = None, accepts_nan: bool = True) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, int(threads))
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        self.kind = kind  # whose outputs: "sklearn" (labels, probabilities) or "torch"
        # one float matrix (the MLP, a bare estimator) or one [n, 1] input per column (Pipelines)
        self.matrix_input = kind == "torch" if matrix_input is None else matrix_input
        self.input_names = input_names
        self.accepts_nan = accepts_nan
        self.classes_ = np.asarray(classes) if classes is not None else None
        self.task = task
        # Each input's element type as the graph declares it: text, float32, or float64 (a
        # HistGradientBoosting's numbers, whose thresholds are float64).
        inputs = self.session.get_inputs()
        self._text_inputs = {i.name for i in inputs if i.type == "tensor(string)"}
        self._double_inputs = {i.name for i in inputs if i.type == "tensor(double)"}
        self._matrix_name = inputs[0].name

    def _dtype(self, name: str) -> type:
        return np.float64 if name in self._double_inputs else np.float32

    def _feed(self, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        """Run the graph once on ready arrays (refusing NaN where the original does)."""
        self._check_nan([v for v in inputs.values() if v.dtype != object])
        return self._answer(self.session.run(None, inputs))

    def outputs(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """(labels or values, probabilities or None) from one run of the graph."""
        if self.matrix_input:
            dtype = self._dtype(self._matrix_name)
            return self._feed({self._matrix_name: frame[self.input_names].to_numpy(dtype=dtype, na_value=np.nan)})
        return self._feed(onnx_inputs(frame, self.input_names, self._double_inputs))

    def outputs_of_columns(self, columns: dict[str, list[Any]]) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`outputs` on plain columns (JSON values, None for null): the online hot path,
        which builds the session's arrays straight from the values, with no DataFrame."""
        if self.matrix_input:
            matrix = np.array([[np.nan if v is None else v for v in columns[n]] for n in self.input_names],
                              dtype=self._dtype(self._matrix_name)).T
            return self._feed({self._matrix_name: matrix})
        inputs = {}
        for name in self.input_names:
            values = columns[name]
            if name in self._text_inputs:
                array = np.array(["" if v is None else str(v) for v in values], dtype=object)
            else:
                array = np.array([np.nan if v is None else v for v in values], dtype=self._dtype(name))
            inputs[name] = array.reshape(-1, 1)
        return self._feed(inputs)

    def _check_nan(self, arrays: list[np.ndarray]) -> None:
        if not self.accepts_nan and any(np.isnan(a).any() for a in arrays):
            raise ValueError("Input X contains NaN: the model does not accept missing values")

    def _answer(self, result: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        if self.kind == "torch":
            out = np.asarray(result[0], dtype=np.float64)
            if self.task == "regression":
                return out.reshape(-1), None
            proba = out if out.ndim == 2 else np.column_stack([1 - out, out])
            if self.classes_ is None:
                raise RuntimeError("a compiled classifier was loaded without its classes")
            labels = (self.classes_[(proba[:, 1] >= 0.5).astype(np.int64)] if proba.shape[1] == 2
                      else self.classes_[np.argmax(proba, axis=1)])
            return labels, proba
        labels = np.asarray(result[0]).reshape(-1)
        if len(result) < 2:
            return labels.astype(np.float64) if self.task == "regression" else labels, None
        return labels, np.asarray(result[1], dtype=np.float64)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self.outputs(frame)[0]

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        proba = self.outputs(frame)[1]
        if proba is None:
            raise AttributeError("a regressor has no predict_proba")
        return proba


def _matrix_input(model: Any) -> bool:
    """A bare estimator takes one matrix; a Pipeline (ColumnTransformer first) named columns."""
    return not _is_torch(model) and not hasattr(model, "steps") and not hasattr(model, "transformers")


def _convert_sklearn(model: Any, example: pd.DataFrame, task: str) -> tuple[bytes, list[str]]:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, StringTensorType

    names = list(example.columns)
    hgb = "HistGradientBoosting" in type(_estimator_of(model)).__name__
    if _matrix_input(model):
        # float32 inputs would move a value that sits near a float64 threshold across it
        matrix = DoubleTensorType if hgb else FloatTensorType
        types = [("X", matrix([None, len(names)]))]
    else:
        # HistGradientBoosting's numbers in double: scaled in float32 (StandardScaler before it
        # in AutoML's Pipeline), a value that sits on one of its float64 thresholds moves
        # across it; in double the graph computes (x - mean) / scale exactly as scikit-learn.
        number = DoubleTensorType if hgb else FloatTensorType
        types = [(n, number([None, 1]) if pd.api.types.is_numeric_dtype(example[n])
                  or pd.api.types.is_bool_dtype(example[n]) else StringTensorType([None, 1]))
                 for n in names]
    options = {id(_estimator_of(model)): {"zipmap": False}} if task != "regression" else None
    if hgb:
        from raymlops.registry.onnx_hgb import register_hgb_converter, require_ml_opset5

        register_hgb_converter()
    onx = to_onnx(model, initial_types=types, options=options, target_opset={"": 17, "ai.onnx.ml": 3})
    if hgb:  # skl2onnx writes at most opset 3 of ai.onnx.ml; its TreeEnsemble node needs 5
        require_ml_opset5(onx)
    return onx.SerializeToString(), names


def _convert_torch(model: Any, example: pd.DataFrame, task: str) -> tuple[bytes, list[str]]:
    import io

    import torch

    names = list(getattr(model, "input_columns", None) or example.columns)

    class _Served(torch.nn.Module):
        """What the predictor answers: probabilities, or values in the target's unit."""

        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.inner(x)
            if task == "regression":
                return out * self.inner.target_std + self.inner.target_mean
            if task == "multiclass":
                return torch.softmax(out, dim=-1)
            p = torch.sigmoid(out)
            return torch.stack([1 - p, p], dim=-1)

    model.eval()
    sample = torch.from_numpy(np.array(example[names].to_numpy(dtype=np.float32, na_value=np.nan)[:2]))
    buffer = io.BytesIO()
    torch.onnx.export(_Served(model).cpu(), (sample,), buffer, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}},
                      opset_version=17, dynamo=False)
    return buffer.getvalue(), names


def _metric_diff(task: str, y: np.ndarray, ours: np.ndarray, theirs: np.ndarray,
                 labels_ours: np.ndarray, labels_theirs: np.ndarray) -> tuple[str, float]:
    from sklearn import metrics

    if task == "regression":
        return "rmse", abs(metrics.root_mean_squared_error(y, ours)
                           - metrics.root_mean_squared_error(y, theirs))
    if ours.shape[1] == 2 and len(np.unique(y)) == 2:
        return "roc_auc", abs(metrics.roc_auc_score(y, ours[:, 1])
                              - metrics.roc_auc_score(y, theirs[:, 1]))
    return "accuracy", abs(metrics.accuracy_score(y, labels_ours)
                           - metrics.accuracy_score(y, labels_theirs))


def compile_model(model: Any, check_rows: pd.DataFrame, task: str,
                  y: np.ndarray | None = None) -> tuple[bytes | None, CompileReport]:
    """Convert ``model`` to ONNX and compare it with the original on ``check_rows``.

    ``task`` is the registry's (``classification`` or ``regression``); ``y``, when given,
    labels the last ``len(y)`` rows (the example rows before them have none), so a tree
    ensemble's gate metric is compared too. Never raises for a model that cannot be
    compiled: the report's ``reason`` says why, and the original serves."""
    started = time.perf_counter()
    report = CompileReport(rows_checked=len(check_rows))
    if len(check_rows) == 0:
        report.reason = "no rows to check the compiled model on (register with an input example)"
        return None, report
    torch_model = _is_torch(model)
    try:
        if torch_model:
            data, names = _convert_torch(model, check_rows, getattr(model, "task", task))
        else:
            data, names = _convert_sklearn(model, check_rows, task)
        onnx_task = getattr(model, "task", "regression" if task == "regression" else "binary")
        matrix_input = bool(torch_model or _matrix_input(model))
        classes = _classes(model)
        compiled = OnnxModel(data, kind="torch" if torch_model else "sklearn", input_names=names,
                             classes=classes, task=onnx_task, matrix_input=matrix_input)
        labels, proba = compiled.outputs(check_rows)
        report.kind = "torch" if torch_model else "sklearn"
        report.input_names = list(names)
        report.classes = None if classes is None else [_plain(c) for c in classes]
        report.onnx_task = onnx_task
        report.matrix_input = matrix_input
    except Exception as exc:  # noqa: BLE001 - any converter failure means: serve the original
        report.reason = f"does not convert: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
        report.seconds = time.perf_counter() - started
        report.converter = _versions()
        return None, report
    report.converter = _versions()
    report.sha256 = digest(data)
    report.accepts_nan = _accepts_nan(model, check_rows)
    if task == "regression":
        ours = np.asarray(model.predict(check_rows), dtype=np.float64).reshape(-1)
        theirs = np.asarray(labels, dtype=np.float64).reshape(-1)
        diff = np.abs(ours - theirs)
        report.max_abs_diff = float(diff.max())
        report.max_rel_diff = float((diff / np.maximum(np.abs(ours), 1e-12)).max())
        if y is not None and len(y):
            n = len(y)
            report.metric, report.metric_diff = _metric_diff(
                task, np.asarray(y), ours[-n:], theirs[-n:], ours[-n:], theirs[-n:])
        exact = report.max_rel_diff <= EXACT_TOLERANCE
        report.serves = exact or (_is_tree_ensemble(model) and report.metric_diff is not None
                                  and report.metric_diff <= TREE_METRIC_TOLERANCE)
        if not report.serves:
            report.reason = (f"predictions differ by up to {report.max_rel_diff:.3g} relative "
                             f"(allowed {EXACT_TOLERANCE:g})")
    else:
        original = np.asarray(model.predict_proba(check_rows), dtype=np.float64)
        original_labels = np.asarray(model.predict(check_rows)).reshape(-1)
        if proba is None:
            raise RuntimeError("the compiled classifier returned no probabilities")
        report.max_abs_diff = float(np.abs(original - proba).max())
        same = original_labels.astype(str) == np.asarray(labels).reshape(-1).astype(str)
        # A tie (two classes equally probable: a forest's votes split evenly) has two right
        # labels, and the runtimes break it differently: not a disagreement.
        top2 = np.sort(original, axis=1)[:, -2:] if original.shape[1] > 1 else original
        tied = (top2[:, -1] - top2[:, 0]) <= 1e-9 if original.shape[1] > 1 else False
        report.label_agreement = float(np.mean(same | tied))
        if y is not None and len(y):
            n = len(y)
            report.metric, report.metric_diff = _metric_diff(
                task, np.asarray(y), original[-n:], proba[-n:], original_labels[-n:],
                np.asarray(labels).reshape(-1)[-n:])
        if _is_tree_ensemble(model):
            report.serves = (report.label_agreement >= TREE_LABEL_AGREEMENT
                             and (report.metric_diff is None
                                  or report.metric_diff <= TREE_METRIC_TOLERANCE))
            if not report.serves:
                report.reason = (f"labels agree on {report.label_agreement:.4%} of rows "
                                 f"(needs {TREE_LABEL_AGREEMENT:.1%}), metric differs by "
                                 f"{report.metric_diff} (allowed {TREE_METRIC_TOLERANCE:g})")
        else:
            report.serves = report.label_agreement == 1.0 and report.max_abs_diff <= EXACT_TOLERANCE
            if not report.serves:
                report.reason = (f"probabilities differ by up to {report.max_abs_diff:.3g} "
                                 f"(allowed {EXACT_TOLERANCE:g}), labels agree on "
                                 f"{report.label_agreement:.4%}")
    report.seconds = time.perf_counter() - started
    return data, report


def _plain(value: Any) -> Any:
    """A NumPy scalar as the Python value JSON stores (a class label)."""
    return value.item() if hasattr(value, "item") else value


def load_compiled_alone(data: bytes, meta: Any, threads: int = 1) -> OnnxModel | None:
    """The compiled model from its bytes and the version's record alone, without the
    original; None where the record lacks what that needs (registered before it was kept)
    or the model is a torch module (whose own API the original provides)."""
    report = meta.compiled or {}
    if report.get("kind") != "sklearn" or report.get("input_names") is None \
            or report.get("onnx_task") is None:
        return None
    return OnnxModel(data, kind="sklearn", input_names=list(report["input_names"]),
                     classes=report.get("classes"), task=report["onnx_task"], threads=threads,
                     matrix_input=bool(report.get("matrix_input")),
                     accepts_nan=bool(report.get("accepts_nan", True)))


def load_compiled(data: bytes, model: Any, meta: Any, threads: int = 1) -> OnnxModel:
    """The compiled model of a registered version, answering in the original's labels."""
    torch_model = _is_torch(model)
    names = list(getattr(model, "input_columns", None) or meta.feature_names or []) \
        if torch_model else list(meta.feature_names or [])
    task = getattr(model, "task", None) or ("regression" if meta.task == "regression" else "binary")
    return OnnxModel(data, kind="torch" if torch_model else "sklearn", input_names=names,
                     classes=_classes(model), task=task, threads=threads,
                     matrix_input=torch_model or _matrix_input(model),
                     accepts_nan=bool((meta.compiled or {}).get("accepts_nan", True)))


def _accepts_nan(model: Any, rows: pd.DataFrame) -> bool:
    """Does the original predict on a row whose numbers are all missing?"""
    probe = rows.head(1).copy()
    numeric = [c for c in probe.columns if pd.api.types.is_numeric_dtype(probe[c])]
    if not numeric:
        return True
    probe[numeric] = probe[numeric].astype("float64")
    probe.loc[:, numeric] = np.nan
    try:
        model.predict(probe)
    except Exception:  # noqa: BLE001 - any refusal counts: the compiled model must refuse too
        return False
    return True


def _classes(model: Any) -> list[Any] | None:
    classes = getattr(model, "classes_", None)
    if classes is None:
        classes = getattr(_estimator_of(model), "classes_", None)
    return None if classes is None else np.asarray(classes).tolist()


def _versions() -> dict[str, str]:
    out = {}
    for module in ("skl2onnx", "onnxruntime", "onnx"):
        try:
            out[module] = __import__(module).__version__
        except ImportError:
            pass
    return out
