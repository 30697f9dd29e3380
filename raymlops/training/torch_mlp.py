"""A small torch MLP for tabular data that the registry can store safely (state_dict only).

Standardisation (mean/std) and missing-value handling live inside the module as buffers, so
the saved state_dict is the whole model: the registry rebuilds it from ``init_kwargs`` and the
class path, with no pickle. ``predict``/``predict_proba`` take a DataFrame (or array) of the
numeric feature columns, so the tracking helper and the serving Predictor treat it like a
scikit-learn classifier.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["TabularMLP", "fit_epoch", "pick_device"]


class TabularMLP(nn.Module):
    """Binary classifier: standardise -> NaN to 0 -> [Linear, ReLU, Dropout] x layers -> logit."""

    def __init__(self, n_features: int, hidden: int = 64, layers: int = 2, dropout: float = 0.1,
                 columns: list[str] | None = None) -> None:
        super().__init__()
        if columns is not None and len(columns) != n_features:
            raise ValueError(f"{len(columns)} column names for {n_features} features")
        self.init_kwargs = {"n_features": n_features, "hidden": hidden, "layers": layers, "dropout": dropout,
                            "columns": list(columns) if columns is not None else None}
        # The input columns, in order (a DataFrame with more columns is narrowed to these).
        self.input_columns = list(columns) if columns is not None else None
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))
        blocks: list[nn.Module] = []
        width = n_features
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden
        blocks.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*blocks)
        self.classes_ = np.array([0, 1])

    def set_scaling(self, X: np.ndarray) -> None:
        mean = np.nanmean(X, axis=0)
        std = np.nanstd(X, axis=0)
        self.mean.copy_(torch.from_numpy(np.nan_to_num(mean).astype(np.float32)))
        self.std.copy_(torch.from_numpy(np.where(std > 0, np.nan_to_num(std, nan=1.0), 1.0).astype(np.float32)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.nan_to_num((x - self.mean) / self.std, nan=0.0)
        return self.net(z).squeeze(-1)

    def _tensor(self, X: Any) -> torch.Tensor:
        if self.input_columns is not None and hasattr(X, "columns"):
            X = X[self.input_columns]
        array = X.to_numpy(dtype=np.float32, na_value=np.nan) if hasattr(X, "to_numpy") else np.asarray(X, dtype=np.float32)
        return torch.from_numpy(array).to(self.mean.device)

    def predict_proba(self, X: Any) -> np.ndarray:
        self.eval()
        with torch.no_grad():
            p = torch.sigmoid(self(self._tensor(X))).cpu().numpy().astype(np.float64)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(np.int64)


def pick_device() -> torch.device:
    """CUDA when this process was given a GPU (Ray sets CUDA_VISIBLE_DEVICES), else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def fit_epoch(model: TabularMLP, X: np.ndarray, y: np.ndarray, optimizer: torch.optim.Optimizer,
              batch_size: int, generator: torch.Generator) -> float:
    """One pass over (X, y) in shuffled mini-batches; returns the mean training loss."""
    model.train()
    device = model.mean.device
    xt = torch.from_numpy(np.asarray(X, dtype=np.float32)).to(device)
    yt = torch.from_numpy(np.asarray(y, dtype=np.float32)).to(device)
    order = torch.randperm(len(xt), generator=generator).to(device)
    loss_fn = nn.BCEWithLogitsLoss()
    total = 0.0
    for start in range(0, len(xt), batch_size):
        idx = order[start:start + batch_size]
        optimizer.zero_grad()
        loss = loss_fn(model(xt[idx]), yt[idx])
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * len(idx)
    return total / max(len(xt), 1)
