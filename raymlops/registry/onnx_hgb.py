"""scikit-learn's HistGradientBoosting as an ONNX ``TreeEnsemble`` (ai.onnx.ml opset 5).

skl2onnx 1.20 refuses scikit-learn 1.9's HistGradientBoosting, and its older route could not
express categorical splits anyway (a split sends a *set* of categories left). ONNX's opset-5
``TreeEnsemble`` can: ``BRANCH_MEMBER`` tests set membership. This module registers a
converter with skl2onnx, so a Pipeline (ColumnTransformer + HGB) converts as one graph.

Every split is written exactly as scikit-learn's predictor walks it
(``_predictor.pyx``), so the compiled model answers the same:

- a numeric split: ``x <= threshold`` goes left; a missing value goes where the tree sent
  missing values in training (``missing_go_to_left``);
- a categorical split is one set-membership node whose set is chosen so that a value that
  is in neither set (missing, negative, a category unseen in training) takes the branch that
  missing values take: the left categories when missing values go right, else the known
  categories that go right.

Thresholds stay float64 and the ensemble runs in double; a Pipeline feeds it numbers computed
in double too (``compiled._convert_sklearn``), so the graph answers as scikit-learn does. What
this converter cannot express raises :class:`NotCompilable`: the registry records the reason
and serves the original flavour.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["NotCompilable", "register_hgb_converter", "require_ml_opset5"]

_LEQ, _MEMBER = 0, 6
_PLACEHOLDER = "raymlops.pending.ai.onnx.ml5"
_REGISTERED = False


class NotCompilable(ValueError):
    """A HistGradientBoosting this converter does not express exactly (served as it is)."""


def _bitset_members(bitset: np.ndarray) -> list[int]:
    """The categories in one 256-bit bitset (8 x uint32, category c = bit c % 32 of word c // 32)."""
    words = np.asarray(bitset, dtype=np.uint32)
    return [32 * w + b for w in range(len(words)) for b in range(32) if (int(words[w]) >> b) & 1]


class _Ensemble:
    """The flattened arrays of a TreeEnsemble node, built one tree at a time."""

    def __init__(self) -> None:
        self.roots: list[int] = []
        self.features: list[int] = []
        self.splits: list[float] = []
        self.modes: list[int] = []
        self.missing_true: list[int] = []
        self.true_ids: list[int] = []
        self.true_leafs: list[int] = []
        self.false_ids: list[int] = []
        self.false_leafs: list[int] = []
        self.members: list[float] = []
        self.leaf_targets: list[int] = []
        self.leaf_weights: list[float] = []

    def _node(self, feature: int, split: float, mode: int, missing_true: bool) -> int:
        self.features.append(int(feature))
        self.splits.append(float(split))
        self.modes.append(mode)
        self.missing_true.append(int(missing_true))
        for column in (self.true_ids, self.true_leafs, self.false_ids, self.false_leafs):
            column.append(0)
        return len(self.features) - 1

    def _link(self, node: int, branch: bool, target: tuple[bool, int]) -> None:
        is_leaf, index = target
        ids, leafs = (self.true_ids, self.true_leafs) if branch else (self.false_ids, self.false_leafs)
        ids[node], leafs[node] = index, int(is_leaf)

    def add_tree(self, nodes: np.ndarray, left_sets: np.ndarray, codes: _Codes, target: int) -> None:
        """One scikit-learn ``TreePredictor`` (its ``nodes`` record array and bitsets)."""
        pending: list[tuple[int, bool, int]] = []  # (our node, branch, their child index)

        def place(index: int) -> tuple[bool, int]:
            """Our (is leaf, index) for their node ``index`` (each is reached once: a tree)."""
            record = nodes[index]
            if record["is_leaf"]:
                self.leaf_targets.append(target)
                self.leaf_weights.append(float(record["value"]))
                return True, len(self.leaf_weights) - 1
            feature = int(record["feature_idx"])  # a column of the estimator's own order
            left, right = int(record["left"]), int(record["right"])
            missing_left = bool(record["missing_go_to_left"])
            if record["is_categorical"]:
                # One set-membership node, built so that whatever is not in its set (missing,
                # negative, unseen) takes the false branch, which leads where missing values go.
                left_values = codes.values(feature, _bitset_members(left_sets[record["bitset_idx"]]))
                if missing_left:  # the set is the known categories that go right
                    members = sorted(set(codes.known(feature)) - set(left_values))
                    on_true, on_false = right, left
                else:
                    members, on_true, on_false = left_values, left, right
                node = self._node(codes.column(feature), np.nan, _MEMBER, False)
                self.members.extend([*members, np.nan])
            else:
                node = self._node(codes.column(feature), record["num_threshold"], _LEQ, missing_left)
                on_true, on_false = left, right
            pending.extend([(node, True, on_true), (node, False, on_false)])
            return False, node

        root = place(0)
        while pending:
            node, branch, child = pending.pop()
            self._link(node, branch, place(child))
        if root[0]:  # a tree that is one leaf: a split whose branches both reach it
            node = self._node(0, 0.0, _LEQ, True)
            self._link(node, True, root)
            self._link(node, False, root)
            root = (False, node)
        self.roots.append(root[1])

    def attributes(self, n_targets: int) -> dict[str, Any]:
        from onnx import TensorProto, helper

        def tensor(name: str, kind: int, values: list[Any]) -> Any:
            return helper.make_tensor(name, kind, [len(values)], values)

        members = self.members or [np.nan]
        return {
            "n_targets": n_targets, "aggregate_function": 1, "post_transform": 0,
            "tree_roots": self.roots, "nodes_featureids": self.features,
            "nodes_splits": tensor("nodes_splits", TensorProto.DOUBLE, self.splits),
            "nodes_modes": tensor("nodes_modes", TensorProto.UINT8, self.modes),
            "nodes_missing_value_tracks_true": self.missing_true,
            "nodes_truenodeids": self.true_ids, "nodes_trueleafs": self.true_leafs,
            "nodes_falsenodeids": self.false_ids, "nodes_falseleafs": self.false_leafs,
            "membership_values": tensor("membership_values", TensorProto.DOUBLE, members),
            "leaf_targetids": self.leaf_targets,
            "leaf_weights": tensor("leaf_weights", TensorProto.DOUBLE, self.leaf_weights),
        }


class _Codes:
    """From the trees' categorical codes back to the values the model is given.

    With ``categorical_features`` set, the estimator first runs its own encoder: categorical
    columns move to the front and each value becomes its rank among the values seen in
    training (an unseen value becomes missing). The trees split on those ranks; the graph
    receives the values, so each set of ranks is written as the set of values they stand for,
    and each split names the input column it reads."""

    def __init__(self, model: Any) -> None:
        self.known_sets, self.known_index = model._bin_mapper.make_known_categories_bitsets()
        encoder = getattr(model, "_preprocessor", None)
        n = int(model.n_features_in_)
        if encoder is None:
            self.order = np.arange(n)
            self.categories: list[np.ndarray] | None = None
            return
        is_categorical = np.asarray(model.is_categorical_, dtype=bool)
        self.order = np.concatenate([np.flatnonzero(is_categorical), np.flatnonzero(~is_categorical)])
        self.categories = list(encoder.named_transformers_["encoder"].categories_)

    def column(self, feature: int) -> int:
        return int(self.order[feature])

    def values(self, feature: int, codes: list[int]) -> list[float]:
        if self.categories is None:
            return [float(c) for c in codes]
        seen = self.categories[feature]
        values = [seen[c] for c in codes if c < len(seen)]
        if any(not isinstance(v, (int, float, np.number)) for v in values):
            raise NotCompilable("text categories given to HistGradientBoosting itself are "
                                      "not compiled; encode them upstream (a ColumnTransformer)")
        return [float(v) for v in values]

    def known(self, feature: int) -> list[float]:
        return self.values(feature, _bitset_members(self.known_sets[self.known_index[feature]]))


def _ensemble_of(model: Any) -> tuple[_Ensemble, int]:
    codes = _Codes(model)
    n_targets = int(model.n_trees_per_iteration_)
    ensemble = _Ensemble()
    for iteration in model._predictors:
        for target, predictor in enumerate(iteration):
            ensemble.add_tree(predictor.nodes, predictor.raw_left_cat_bitsets, codes, target)
    return ensemble, n_targets


def _element_type(variable: Any) -> int:
    """The ONNX element type skl2onnx declared for an output (double in, double out)."""
    from onnx import TensorProto

    return TensorProto.DOUBLE if type(variable.type).__name__ == "DoubleTensorType" else TensorProto.FLOAT


def _convert(scope: Any, operator: Any, container: Any) -> None:
    from onnx import TensorProto

    model = operator.raw_operator
    ensemble, n_targets = _ensemble_of(model)
    link = type(model._loss.link).__name__  # how raw scores become predictions
    name = scope.get_unique_variable_name

    def node(op: str, inputs: list[str], domain: str = "", version: int | None = None, **attrs: Any) -> str:
        out = name(op.lower())
        container.add_node(op, inputs, [out], name=scope.get_unique_operator_name(op),
                           op_domain=domain, op_version=version, **attrs)
        return out

    x = operator.inputs[0].full_name
    if type(operator.inputs[0].type).__name__ != "DoubleTensorType":
        x = node("Cast", [x], to=TensorProto.DOUBLE)
    # skl2onnx refuses opset 5 of ai.onnx.ml: the node is written in a placeholder domain that
    # require_ml_opset5 renames once the graph is complete
    raw = node("TreeEnsemble", [x], domain=_PLACEHOLDER, version=1, **ensemble.attributes(n_targets))
    baseline = name("baseline")
    container.add_initializer(baseline, TensorProto.DOUBLE, [1, n_targets],
                              np.asarray(model._baseline_prediction, dtype=np.float64).reshape(-1).tolist())
    raw = node("Add", [raw, baseline])

    if not hasattr(model, "classes_"):  # a regressor
        value = {"IdentityLink": lambda r: r, "LogLink": lambda r: node("Exp", [r])}.get(link)
        if value is None:
            raise NotCompilable(f"HistGradientBoostingRegressor with a {link} is not compiled")
        container.add_node("Cast", [value(raw)], [operator.outputs[0].full_name],
                           name=scope.get_unique_operator_name("Cast"), to=_element_type(operator.outputs[0]))
        return

    if n_targets == 1:
        positive = node("Sigmoid", [raw])
        one = name("one")
        container.add_initializer(one, TensorProto.DOUBLE, [1, 1], [1.0])
        proba = node("Concat", [node("Sub", [one, positive]), positive], axis=1)
    else:
        proba = node("Softmax", [raw], axis=1)
    index = node("ArgMax", [proba], axis=1, keepdims=0)
    classes = np.asarray(model.classes_)
    table = name("classes")
    if classes.dtype.kind in "iub":
        container.add_initializer(table, TensorProto.INT64, [len(classes)], classes.astype(np.int64).tolist())
    else:
        container.add_initializer(table, TensorProto.STRING, [len(classes)],
                                  [str(c).encode() for c in classes])
    container.add_node("Gather", [table, index], [operator.outputs[0].full_name],
                       name=scope.get_unique_operator_name("Gather"), axis=0)
    container.add_node("Cast", [proba], [operator.outputs[1].full_name],
                       name=scope.get_unique_operator_name("Cast"), to=_element_type(operator.outputs[1]))


def register_hgb_converter() -> None:
    """Teach skl2onnx both HistGradientBoosting estimators (idempotent)."""
    global _REGISTERED
    if _REGISTERED:
        return
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    update_registered_converter(
        HistGradientBoostingClassifier, "RaymlopsHistGradientBoostingClassifier",
        calculate_linear_classifier_output_shapes, _convert,
        options={"zipmap": [True, False, "columns"], "nocl": [True, False]}, overwrite=True)
    update_registered_converter(
        HistGradientBoostingRegressor, "RaymlopsHistGradientBoostingRegressor",
        calculate_linear_regressor_output_shapes, _convert, overwrite=True)
    _REGISTERED = True


def require_ml_opset5(model: Any) -> None:
    """Declare ai.onnx.ml opset 5 on a converted model (skl2onnx declares at most 3).

    The other ai.onnx.ml operators a Pipeline uses (Scaler, OneHotEncoder, Imputer...) are
    unchanged in 5; the two it removed, TreeEnsembleClassifier/Regressor, are refused."""
    ops = {(n.domain, n.op_type) for n in model.graph.node}
    if {("ai.onnx.ml", "TreeEnsembleClassifier"), ("ai.onnx.ml", "TreeEnsembleRegressor")} & ops:
        raise NotCompilable("a graph with both HistGradientBoosting and another tree ensemble")
    for node in model.graph.node:
        if node.domain == _PLACEHOLDER:
            node.domain = "ai.onnx.ml"
    kept = [e for e in model.opset_import if e.domain not in (_PLACEHOLDER, "ai.onnx.ml")]
    del model.opset_import[:]
    model.opset_import.extend(kept)
    model.opset_import.add(domain="ai.onnx.ml", version=5)
