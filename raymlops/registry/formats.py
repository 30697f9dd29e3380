"""Model artifact formats: safe by default, digest-checked, one ``Predictor`` for all flavors.

Why our own thin layer rather than MLflow's flavors: MLflow's pytorch flavor pickles the whole
module, and its loaders never check that the bytes are the ones that were registered. Here:

- scikit-learn -> **skops** (no pickle). Loading trusts only types from scikit-learn, NumPy,
  SciPy and builtins; anything else in the file is refused.
- torch -> **state_dict** saved with ``torch.save`` and read with ``weights_only=True``; the
  module is rebuilt from its class path (which must be an ``nn.Module``) and init kwargs.
- anything else -> **pickle** (cloudpickle), registrable but loadable only from a source the
  user marked trusted (``Settings.trusted_sources``).

Every artifact carries the sha256 of its bytes, recorded at registration and checked at load.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from raymlops.exceptions import SchemaMismatchError, UnsafeArtifactError, ValidationError

if TYPE_CHECKING:  # annotations only: pandas is imported where frames are built
    import pandas as pd

__all__ = [
    "COMPILED_FILE",
    "DATA_FILES",
    "DATA_SCHEMA_FILE",
    "ArtifactMeta",
    "DeferredModel",
    "Predictor",
    "deserialize",
    "digest",
    "serialize",
    "verify_digest",
]

Flavor = Literal["sklearn", "torch", "python"]
Format = Literal["skops", "torch_state_dict", "pickle"]

DATA_SCHEMA_FILE = "data_schema.json"
COMPILED_FILE = "model.onnx"  # the compiled model (raymlops.registry.compiled), when it converts
DATA_FILES: dict[str, str] = {
    "skops": "model.skops",
    "torch_state_dict": "state_dict.pt",
    "pickle": "model.pkl",
}
META_FILE = "raymlops.json"
SAFE_SKOPS_PREFIXES = ("sklearn.", "numpy.", "scipy.", "builtins.", "collections.", "_operator.")
# functools.partial only binds arguments to a callable, and skops lists that callable among the
# file's types too (HistGradientBoosting with categorical features stores
# partial(sklearn.utils.validation.check_array, ...)), so the callable is still checked.
SAFE_SKOPS_TYPES = frozenset({"functools.partial"})


@dataclass(frozen=True)
class ArtifactMeta:
    """What is stored next to the model bytes (``raymlops.json``) and as version tags."""

    flavor: str
    format: str
    sha256: str
    size: int
    task: str | None = None  # "classification" / "regression" / None
    class_path: str | None = None  # torch: module class to rebuild
    init_kwargs: dict[str, Any] = field(default_factory=dict)
    feature_names: list[str] | None = None
    signature: dict[str, Any] | None = None  # MLflow ModelSignature.to_dict()
    # A model trained on feature-store features: the FeatureService whose point-in-time
    # (batch) or online (serving) values it takes, and the entity-row column that gives the
    # "as of" time for point-in-time joins. Callers then send entity keys, not features.
    feature_service: str | None = None
    entity_timestamp: str | None = None
    # sha256 of the training data's validation schema (``data_schema.json`` next to the
    # model), so the schema checked later is the one recorded at registration.
    data_schema_sha256: str | None = None
    # What compiling the model to ONNX found (raymlops.registry.compiled.CompileReport): its
    # sha256 (``model.onnx`` next to the model), whether it serves, the measured differences.
    compiled: dict[str, Any] | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ArtifactMeta:
        return cls(**json.loads(text))


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify_digest(data: bytes, expected: str, where: str) -> None:
    actual = digest(data)
    if actual != expected:
        raise UnsafeArtifactError(
            f"model bytes at {where} do not match the digest recorded at registration "
            f"(expected sha256 {expected[:12]}..., got {actual[:12]}...): refusing to load",
            where=where,
        )


def _stable_zip(data: bytes) -> bytes:
    """Make skops output a function of the model alone, so equal models give equal digests.

    skops names arrays and memo entries after ``id()`` of the in-memory objects and stamps
    the zip with the current time; both change between processes. Ids are renumbered in
    order of first appearance and the time is fixed, so a registration retried from any
    process produces the same bytes and the registry can recognise it.
    """
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as src:
        schema = json.loads(src.read("schema.json"))
        mapping: dict[str, str] = {}

        def canon(old: str) -> str:
            return mapping.setdefault(old, str(len(mapping) + 1))

        def walk(node: Any) -> Any:
            if isinstance(node, dict):
                out = {}
                for key, value in node.items():
                    if key == "__id__" and isinstance(value, int):
                        out[key] = int(canon(str(value)))
                    elif key == "file" and isinstance(value, str) and value.endswith(".npy"):
                        out[key] = canon(value[:-4]) + ".npy"
                    else:
                        out[key] = walk(value)
                return out
            if isinstance(node, list):
                return [walk(v) for v in node]
            return node

        schema = walk(schema)
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as dst:
            entries = []
            for name in src.namelist():
                if name == "schema.json":
                    entries.append((name, json.dumps(schema, sort_keys=True).encode()))
                elif name.endswith(".npy"):
                    entries.append((canon(name[:-4]) + ".npy", src.read(name)))
                else:
                    entries.append((name, src.read(name)))
            for target, payload in sorted(entries):
                info = zipfile.ZipInfo(target, date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                dst.writestr(info, payload)
    return out.getvalue()


def _is_torch_module(model: Any) -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return isinstance(model, torch.nn.Module)


def _is_sklearn(model: Any) -> bool:
    return type(model).__module__.startswith("sklearn.")


def _task_of(model: Any) -> str | None:
    estimator_type = getattr(model, "_estimator_type", None)
    if estimator_type is None:
        try:
            from sklearn.base import is_classifier, is_regressor

            if is_classifier(model):
                return "classification"
            if is_regressor(model):
                return "regression"
        except Exception:  # noqa: BLE001
            return None
    return {"classifier": "classification", "regressor": "regression"}.get(estimator_type)


def serialize(
    model: Any,
    *,
    init_kwargs: dict[str, Any] | None = None,
    task: str | None = None,
    feature_names: list[str] | None = None,
    signature: dict[str, Any] | None = None,
    allow_pickle: bool = False,
) -> tuple[bytes, ArtifactMeta]:
    """Model -> (bytes, meta). Picks the safe format for the flavor; pickle only if allowed."""
    class_path = None
    if _is_torch_module(model):
        import torch

        kwargs = init_kwargs if init_kwargs is not None else getattr(model, "init_kwargs", None)
        if kwargs is None:
            raise ValidationError(
                "a torch model is stored as a state_dict and rebuilt from its class: pass "
                "init_kwargs (the constructor arguments) or give the module an `init_kwargs` "
                "attribute",
                field="init_kwargs",
            )
        buffer = io.BytesIO()
        torch.save(model.state_dict(), buffer)
        data, flavor, fmt = buffer.getvalue(), "torch", "torch_state_dict"
        class_path = f"{type(model).__module__}:{type(model).__qualname__}"
        init_kwargs = dict(kwargs)
    elif _is_sklearn(model):
        skops_io = import_skops()

        data, flavor, fmt = _stable_zip(skops_io.dumps(model)), "sklearn", "skops"
        task = task or _task_of(model)
        if feature_names is None and hasattr(model, "feature_names_in_"):
            feature_names = [str(c) for c in model.feature_names_in_]
    elif allow_pickle:
        import cloudpickle

        data, flavor, fmt = cloudpickle.dumps(model), "python", "pickle"
        task = task or _task_of(model)
    else:
        raise ValidationError(
            f"{type(model).__name__} is neither a scikit-learn estimator nor a torch module; "
            "registering it needs the pickle format (allow_pickle=True), which only loads "
            "from sources marked trusted",
            field="model",
        )
    meta = ArtifactMeta(
        flavor=flavor, format=fmt, sha256=digest(data), size=len(data), task=task,
        class_path=class_path, init_kwargs=init_kwargs or {}, feature_names=feature_names,
        signature=signature,
    )
    return data, meta


def import_skops() -> Any:
    """``skops.io``, imported without dragging torch in when nothing has imported it yet.

    Why: skops lists scikit-learn's estimators at import (``sklearn.utils.all_estimators``),
    whose package walk imports ``sklearn.externals.array_api_compat.torch`` -- and so torch:
    1.3 of skops' 1.8 s import in every fresh worker that loads a model (serving replicas,
    batch scorers, trial restores). The walk only needs that package to exist, so a bare
    placeholder stands in for it during the import and is removed after, leaving a later real
    import of it (array-API dispatch on torch) untouched.
    """
    import sys
    import types

    if "skops.io" in sys.modules or "torch" in sys.modules:
        import skops.io

        return skops.io
    shim = "sklearn.externals.array_api_compat.torch"
    placeholder = None
    if shim not in sys.modules:
        placeholder = sys.modules[shim] = types.ModuleType(shim)
    try:
        import skops.io
    finally:
        if placeholder is not None and sys.modules.get(shim) is placeholder:
            del sys.modules[shim]
    return skops.io


def _load_skops(data: bytes, trusted_source: bool) -> Any:
    """Audit, then build. One pass over the file where skops' internals allow it.

    Why: ``get_untrusted_types`` followed by ``loads`` parses the file into skops' node tree
    twice (a 200-iteration gradient-boosting Pipeline: 88 ms -> 70 ms median here, paid by
    every replica, batch scorer and search that loads one). The single pass builds the tree
    once, takes the same untrusted-type set from it, applies the same policy and audit, and
    constructs.
    """
    skops_io = import_skops()
    try:
        from skops.io._audit import audit_tree, get_tree
        from skops.io._utils import read_schema
    except ImportError:  # another skops layout: the public two-pass API
        return _check_skops_types(skops_io.get_untrusted_types(data=data), trusted_source,
                                  lambda untrusted: skops_io.loads(data, trusted=untrusted))
    with zipfile.ZipFile(io.BytesIO(data), "r") as archive:
        schema, context = read_schema(archive)
        tree = get_tree(schema, context, trusted=None)
        untrusted = sorted(tree.get_unsafe_set())

        def construct(trusted: list[str]) -> Any:
            audit_tree(tree, trusted=trusted)
            return tree.construct()

        return _check_skops_types(untrusted, trusted_source, construct)


def _check_skops_types(untrusted: list[str], trusted_source: bool, load: Any) -> Any:
    """Refuse types outside scikit-learn/NumPy/SciPy unless the source is trusted; else load."""
    unsafe = [t for t in untrusted if not t.startswith(SAFE_SKOPS_PREFIXES) and t not in SAFE_SKOPS_TYPES]
    if unsafe and not trusted_source:
        raise UnsafeArtifactError(
            f"the skops file names types outside scikit-learn/NumPy/SciPy: {unsafe}; mark "
            "its source trusted to load it",
            types=unsafe,
        )
    return load(untrusted)


def _load_torch(data: bytes, meta: ArtifactMeta) -> Any:
    import torch

    if not meta.class_path or ":" not in meta.class_path:
        raise UnsafeArtifactError("torch artifact has no class path to rebuild the module")
    module_name, _, qualname = meta.class_path.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise UnsafeArtifactError(f"cannot import model class {meta.class_path}: {exc}") from exc
    if not (isinstance(obj, type) and issubclass(obj, torch.nn.Module)):
        raise UnsafeArtifactError(f"{meta.class_path} is not a torch.nn.Module subclass")
    module = obj(**meta.init_kwargs)
    state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    module.load_state_dict(state)
    module.eval()
    return module


def deserialize(data: bytes, meta: ArtifactMeta, *, trusted_source: bool = False) -> Any:
    """Bytes -> model, after checking the digest; pickle only from a trusted source."""
    verify_digest(data, meta.sha256, where=f"{meta.flavor}/{meta.format}")
    if meta.format == "skops":
        return _load_skops(data, trusted_source)
    if meta.format == "torch_state_dict":
        return _load_torch(data, meta)
    if meta.format == "pickle":
        if not trusted_source:
            raise UnsafeArtifactError(
                "this model is a pickle, which runs code when loaded; its source is not in "
                "trusted_sources (RAYMLOPS_TRUSTED_SOURCES), so it is refused",
                format="pickle",
            )
        import cloudpickle

        return cloudpickle.loads(data)
    raise UnsafeArtifactError(f"unknown model format {meta.format!r}")


def _float32(data: Any) -> np.ndarray:
    """Numbers for a torch module; pandas' nullable columns (pd.NA) become NaN, not errors."""
    if hasattr(data, "to_numpy"):
        return data.to_numpy(dtype=np.float32, na_value=np.nan)
    return np.asarray(data, dtype=np.float32)


class DeferredModel:
    """The original model, loaded on first use: a process that only runs the compiled model
    (a batch scoring actor) never pays for loading it."""

    def __init__(self, load: Callable[[], Any]) -> None:
        self._load = load
        self._model: Any = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if self._model is None:
            self._model = self._load()
        return getattr(self._model, name)


class Predictor:
    """A loaded model version, ready to predict on a DataFrame; says which version it is."""

    def __init__(self, model: Any, meta: ArtifactMeta, name: str, version: int,
                 compiled: Any = None) -> None:
        self.model = model
        self.meta = meta
        self.name = name
        self.version = version
        # The ONNX model that matched the original at registration (raymlops.registry.compiled):
        # when present it answers predict/predict_proba; the original stays for everything else.
        self.compiled = compiled

    @property
    def classes(self) -> Any:
        """The class labels (None for a regressor), from the compiled model when it answers,
        so asking does not load a deferred original."""
        if self.compiled is not None and getattr(self.compiled, "classes_", None) is not None:
            return self.compiled.classes_
        return getattr(self.model, "classes_", None)

    @property
    def feature_names(self) -> list[str] | None:
        if self.meta.feature_names:
            return list(self.meta.feature_names)
        if self.meta.signature and self.meta.signature.get("inputs"):
            inputs = json.loads(self.meta.signature["inputs"])
            return [c["name"] for c in inputs if "name" in c]
        return None

    def _frame(self, data: pd.DataFrame | np.ndarray) -> pd.DataFrame | np.ndarray:
        import pandas as pd

        names = self.feature_names
        if isinstance(data, pd.DataFrame) and names:
            # Already in the model's order (what serving's validation hands over): no copy.
            # ``data[names]`` would copy the frame, ~0.2 ms per online request of one row.
            if list(data.columns) == names:
                return data
            missing = [n for n in names if n not in data.columns]
            if missing:
                raise SchemaMismatchError(
                    f"input lacks columns {missing} that model {self.name} v{self.version} needs",
                    missing=missing,
                )
            return data[names]
        return data

    def _torch_forward(self, data: Any) -> np.ndarray:
        import torch

        array = _float32(data)
        with torch.no_grad():
            out = self.model(torch.from_numpy(array))
        return out.detach().cpu().numpy()

    def _own_api(self) -> bool:
        """A torch module with its own ``predict`` (TabularMLP) knows its labels and its
        target's unit; the raw-output path below would answer class indices and
        standardised values instead."""
        return self.meta.flavor == "torch" and callable(getattr(self.model, "predict", None))

    def predict_proba(self, data: pd.DataFrame | np.ndarray) -> np.ndarray:
        frame = self._frame(data)
        if self.meta.flavor == "torch" and not self._own_api():
            logits = self._torch_forward(frame)
            if logits.ndim == 1 or logits.shape[1] == 1:
                p = 1.0 / (1.0 + np.exp(-logits.reshape(-1)))
                return np.column_stack([1 - p, p])
            exp = np.exp(logits - logits.max(axis=1, keepdims=True))
            return exp / exp.sum(axis=1, keepdims=True)
        if self.compiled is not None and self.compiled.classes_ is not None:
            return self.compiled.predict_proba(frame)
        if not hasattr(self.model, "predict_proba"):
            raise ValidationError(f"model {self.name} v{self.version} has no predict_proba")
        if self.compiled is not None:
            return self.compiled.predict_proba(frame)
        return np.asarray(self.model.predict_proba(frame))

    def predict(self, data: pd.DataFrame | np.ndarray) -> np.ndarray:
        frame = self._frame(data)
        if self.meta.flavor == "torch" and not self._own_api():
            if self.meta.task == "classification":
                return self.predict_proba(frame).argmax(axis=1)
            return self._torch_forward(frame).reshape(len(frame), -1).squeeze(-1)
        if self.compiled is not None:
            return self.compiled.predict(frame)
        return np.asarray(self.model.predict(frame))

    def __repr__(self) -> str:
        compiled = ", compiled" if self.compiled is not None else ""
        return f"Predictor({self.name!r}, version={self.version}, flavor={self.meta.flavor}{compiled})"
