"""A small torch MLP for tabular data that the registry can store safely (state_dict only).

Standardisation (mean/std) and missing-value handling live inside the module as buffers, so
the saved state_dict is the whole model: the registry rebuilds it from ``init_kwargs`` and the
class path, with no pickle. ``predict``/``predict_proba`` take a DataFrame (or array) of the
numeric feature columns, so the tracking helper and the serving Predictor treat it like a
scikit-learn estimator.

One module for the three tasks, told apart by ``task``:

- binary: one logit (sigmoid, BCE) -- the architecture and state_dict keys of every binary
  model stored before tasks existed, which must keep loading;
- multiclass: one logit per class (softmax, cross-entropy), ``classes_`` the labels in the
  order of the outputs (any JSON type: they are ``init_kwargs``);
- regression: one output trained with MSE on the standardised target, whose mean and std are
  buffers too (so ``predict`` answers in the target's unit); no ``predict_proba``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["TabularMLP", "fit_epoch", "pick_device"]

TASKS = ("binary", "multiclass", "regression")


def _plain(values: Any) -> list[Any]:
    """Python scalars (JSON-serialisable ``init_kwargs``) from a list or array of labels."""
    return [v.item() if isinstance(v, np.generic) else v for v in np.asarray(values, dtype=object).tolist()]


def _class_codes(classes: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The position of each label of ``y`` in ``classes``; a ValueError names a stranger.

    Vectorised (a sorted search) when labels compare with each other -- every epoch converts
    the whole training set -- with a dictionary for anything else.
    """
    try:
        order = np.argsort(classes, kind="stable")
        position = np.clip(np.searchsorted(classes[order], y), 0, len(classes) - 1)
        codes = order[position]
        found = classes[codes] == y
    except TypeError:  # labels of mixed types do not sort
        index = {label: k for k, label in enumerate(classes.tolist())}
        codes = np.asarray([index.get(label, -1) for label in y.tolist()], dtype=np.int64)
        found = codes >= 0
    if not np.all(found):
        stranger = y[~np.asarray(found, dtype=bool)][0]
        raise ValueError(f"label {stranger!r} is not one of the model's classes {classes.tolist()}")
    return np.asarray(codes, dtype=np.int64)


class TabularMLP(nn.Module):
    """standardise -> NaN to 0 -> [Linear, ReLU, Dropout] x layers -> one output per logit."""

    # buffers (saved in the state_dict), annotated for type checkers
    mean: torch.Tensor
    std: torch.Tensor
    target_mean: torch.Tensor  # regression only
    target_std: torch.Tensor  # regression only

    def __init__(self, n_features: int, hidden: int = 64, layers: int = 2, dropout: float = 0.1,
                 columns: list[str] | None = None, task: str = "binary",
                 classes: list[Any] | None = None) -> None:
        super().__init__()
        if columns is not None and len(columns) != n_features:
            raise ValueError(f"{len(columns)} column names for {n_features} features")
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; use one of {list(TASKS)}")
        labels = None if classes is None else _plain(classes)
        if task == "regression" and labels is not None:
            raise ValueError("a regressor has no classes")
        if task == "multiclass" and (labels is None or len(labels) < 2):
            raise ValueError("a multiclass model needs its classes (two or more)")
        if task == "binary" and labels is not None and len(labels) != 2:
            raise ValueError(f"a binary model has two classes, got {labels}")
        self.task = task
        self.init_kwargs = {"n_features": n_features, "hidden": hidden, "layers": layers, "dropout": dropout,
                            "columns": list(columns) if columns is not None else None,
                            "task": task, "classes": labels}
        # The input columns, in order (a DataFrame with more columns is narrowed to these).
        self.input_columns = list(columns) if columns is not None else None
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))
        if task == "regression":
            self.register_buffer("target_mean", torch.zeros(()))
            self.register_buffer("target_std", torch.ones(()))
        blocks: list[nn.Module] = []
        width = n_features
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden
        blocks.append(nn.Linear(width, len(labels) if task == "multiclass" and labels else 1))
        self.net = nn.Sequential(*blocks)
        if task != "regression":
            self.classes_ = np.array(labels if labels is not None else [0, 1])

    def set_scaling(self, X: np.ndarray) -> None:
        mean = np.nanmean(X, axis=0)
        std = np.nanstd(X, axis=0)
        self.mean.copy_(torch.from_numpy(np.nan_to_num(mean).astype(np.float32)))
        self.std.copy_(torch.from_numpy(np.where(std > 0, np.nan_to_num(std, nan=1.0), 1.0).astype(np.float32)))

    def set_target_scaling(self, y: np.ndarray) -> None:
        """Regression: train on (y - mean) / std, so one learning rate suits any target unit."""
        if self.task != "regression":
            raise ValueError("only a regressor scales its target")
        y = np.asarray(y, dtype=np.float64)
        std = float(np.std(y)) if len(y) else 1.0
        self.target_mean.fill_(float(np.mean(y)) if len(y) else 0.0)
        self.target_std.fill_(std if std > 0 and np.isfinite(std) else 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (binary: one per row; multiclass: one per class), or the standardised target."""
        z = torch.nan_to_num((x - self.mean) / self.std, nan=0.0)
        out = self.net(z)
        return out if self.task == "multiclass" else out.squeeze(-1)

    def _tensor(self, X: Any) -> torch.Tensor:
        if self.input_columns is not None and hasattr(X, "columns"):
            X = X[self.input_columns]
        array = (X.to_numpy(dtype=np.float32, na_value=np.nan) if hasattr(X, "to_numpy")
                 else np.asarray(X, dtype=np.float32))
        # pandas' copy-on-write hands out read-only arrays, which torch warns about sharing
        return torch.from_numpy(np.require(array, requirements="W")).to(self.mean.device)

    def _outputs(self, X: Any) -> torch.Tensor:
        self.eval()
        with torch.no_grad():
            return self(self._tensor(X))

    @property
    def predict_proba(self) -> Any:
        """Class probabilities, columns in ``classes_`` order; a regressor has none (like
        scikit-learn's ``available_if``: ``hasattr(model, "predict_proba")`` is False)."""
        if self.task == "regression":
            raise AttributeError("a regression TabularMLP has no predict_proba")
        return self._predict_proba

    def _predict_proba(self, X: Any) -> np.ndarray:
        out = self._outputs(X)
        if self.task == "multiclass":
            return torch.softmax(out, dim=-1).cpu().numpy().astype(np.float64)
        p = torch.sigmoid(out).cpu().numpy().astype(np.float64)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        """Labels from ``classes_`` for classifiers; floats in the target's unit for a regressor."""
        if self.task == "regression":
            out = self._outputs(X) * self.target_std + self.target_mean
            return out.cpu().numpy().astype(np.float64)
        proba = self._predict_proba(X)
        if self.task == "binary":
            return self.classes_[(proba[:, 1] >= 0.5).astype(np.int64)]
        return self.classes_[np.argmax(proba, axis=1)]

    def targets(self, y: np.ndarray) -> torch.Tensor:
        """What the loss compares outputs to: 0/1 (binary), class indices (multiclass), or
        the standardised target (regression)."""
        if self.task == "regression":
            values = (np.asarray(y, dtype=np.float64) - float(self.target_mean)) / float(self.target_std)
            return torch.from_numpy(values.astype(np.float32))
        codes = _class_codes(self.classes_, np.asarray(y))
        return torch.from_numpy(codes if self.task == "multiclass" else codes.astype(np.float32))

    def loss_fn(self) -> nn.Module:
        return {"binary": nn.BCEWithLogitsLoss, "multiclass": nn.CrossEntropyLoss,
                "regression": nn.MSELoss}[self.task]()


def pick_device() -> torch.device:
    """CUDA when this process was given a GPU (Ray sets CUDA_VISIBLE_DEVICES), else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def fit_epoch(model: TabularMLP, X: np.ndarray, y: np.ndarray, optimizer: torch.optim.Optimizer,
              batch_size: int, generator: torch.Generator) -> float:
    """One pass over (X, y) in shuffled mini-batches; returns the mean training loss.

    ``y`` holds the labels (any of ``classes_``) or, for a regressor, the raw target: the
    model turns them into what its loss takes (:meth:`TabularMLP.targets`).
    """
    model.train()
    device = model.mean.device
    xt = torch.from_numpy(np.require(np.asarray(X, dtype=np.float32), requirements="W")).to(device)
    yt = model.targets(y).to(device)
    order = torch.randperm(len(xt), generator=generator).to(device)
    loss_fn = model.loss_fn()
    total = 0.0
    for start in range(0, len(xt), batch_size):
        idx = order[start:start + batch_size]
        optimizer.zero_grad()
        loss = loss_fn(model(xt[idx]), yt[idx])
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * len(idx)
    return total / max(len(xt), 1)
