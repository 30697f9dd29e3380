"""Diagnostic figures for a training run: small pure functions, one figure each.

They build :class:`matplotlib.figure.Figure` objects directly on an Agg canvas instead of going
through ``pyplot``: pyplot keeps a process-global registry of open figures and a global backend,
and a Ray worker process trains many models (and several threads may plot at once), so
figures made here never touch that state, never leak, and never need a display. The caller
saves the figure (``fig.savefig``) and drops it; nothing else holds a reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import (
    auc,
    average_precision_score,
    confusion_matrix,
    precision_recall_curve,
    roc_curve,
)

__all__ = [
    "confusion_matrix_figure",
    "feature_importance_figure",
    "residual_figure",
    "roc_pr_figures",
]

#: Curves drawn at most in a multiclass ROC/PR figure (one-vs-rest); more is unreadable.
MAX_CURVES = 10
#: Points drawn at most in a residual scatter; beyond that the plot is ink, and slow to save.
MAX_POINTS = 5_000


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)  # an explicit Agg canvas: savefig never consults a global backend
    return fig


def confusion_matrix_figure(
    y_true: Any, y_pred: Any, *, labels: Sequence[Any] | None = None
) -> Figure:
    """Counts of true (rows) vs predicted (columns) classes, each cell annotated.

    Cells are shaded by the row-normalised rate so a rare class's errors stay visible, and
    annotated with both the count and that rate.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if labels is None:
        labels = np.unique(np.concatenate([y_true, y_pred]))
    labels = list(labels)
    counts = confusion_matrix(y_true, y_pred, labels=labels)
    totals = counts.sum(axis=1, keepdims=True)
    rates = np.divide(counts, totals, out=np.zeros(counts.shape, float), where=totals > 0)

    size = min(4.0 + 0.5 * len(labels), 12.0)
    fig = _figure(size + 1.0, size)
    ax = fig.add_subplot()
    image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, label="fraction of true class")
    if len(labels) <= 20:
        for i in range(len(labels)):
            for j in range(len(labels)):
                ax.text(
                    j, i, f"{counts[i, j]}\n({rates[i, j]:.0%})", ha="center", va="center",
                    color="white" if rates[i, j] > 0.5 else "black", fontsize=9,
                )
    names = [str(label) for label in labels]
    ax.set_xticks(range(len(labels)), names, rotation=45 if len(labels) > 5 else 0)
    ax.set_yticks(range(len(labels)), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"Confusion matrix (n={int(counts.sum())})")
    return fig


def _one_vs_rest(
    y_true: np.ndarray, scores: np.ndarray, labels: Sequence[Any] | None
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, binary truth, score) per curve: one curve for binary, one per class otherwise."""
    if scores.ndim == 1 or scores.shape[1] == 1:
        positive = labels[-1] if labels is not None else np.unique(y_true)[-1]
        return [(f"positive={positive}", (y_true == positive).astype(int), scores.reshape(-1))]
    if labels is None:
        labels = np.unique(y_true)
    if scores.shape[1] == 2:
        return [(f"positive={labels[1]}", (y_true == labels[1]).astype(int), scores[:, 1])]
    # a class absent from y_true (or the only one in it) has no curve: its rates are 0/0
    curves = [
        (f"class {label}", truth, scores[:, k])
        for k, label in enumerate(list(labels))
        if 0 < (truth := (y_true == label).astype(int)).sum() < len(truth)
    ]
    return curves[:MAX_CURVES]


def roc_pr_figures(
    y_true: Any, scores: Any, *, labels: Sequence[Any] | None = None
) -> tuple[Figure, Figure]:
    """The ROC curve and the precision-recall curve, each with its area and a chance line.

    ``scores`` is the positive-class probability (1-D) or ``predict_proba``'s matrix, whose
    columns follow ``labels`` (the model's ``classes_``). With more than two classes each
    figure shows one one-vs-rest curve per class present in ``y_true`` (at most
    :data:`MAX_CURVES`).
    """
    y_true, scores = np.asarray(y_true), np.asarray(scores, dtype=float)
    curves = _one_vs_rest(y_true, scores, labels)

    roc = _figure(6.0, 5.0)
    ax = roc.add_subplot()
    for name, truth, score in curves:
        fpr, tpr, _ = roc_curve(truth, score)
        ax.plot(fpr, tpr, lw=2, label=f"{name} (AUC = {auc(fpr, tpr):.3f})")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="chance")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="false positive rate",
           ylabel="true positive rate (recall)", title="ROC curve")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)

    pr = _figure(6.0, 5.0)
    ax = pr.add_subplot()
    for name, truth, score in curves:
        precision, recall, _ = precision_recall_curve(truth, score)
        ap = average_precision_score(truth, score)
        line, = ax.step(recall, precision, where="post", lw=2, label=f"{name} (AP = {ap:.3f})")
        ax.axhline(truth.mean(), ls="--", lw=1, color=line.get_color(), alpha=0.6)
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision",
           title="Precision-recall curve (dashed: prevalence = chance)")
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(alpha=0.3)
    return roc, pr


def residual_figure(y_true: Any, y_pred: Any, *, seed: int = 0) -> Figure:
    """Predicted vs actual (with the identity line) and residuals vs predicted (with zero).

    At most :data:`MAX_POINTS` points are drawn (a seeded sample), so the plot stays readable
    and quick to save for large validation sets.
    """
    y_true = np.asarray(y_true, dtype=float).reshape(-1)
    y_pred = np.asarray(y_pred, dtype=float).reshape(-1)
    if y_true.size > MAX_POINTS:
        keep = np.random.default_rng(seed).choice(y_true.size, MAX_POINTS, replace=False)
        y_true, y_pred = y_true[keep], y_pred[keep]
    residuals = y_true - y_pred

    fig = _figure(11.0, 4.8)
    left, right = fig.subplots(1, 2)
    left.scatter(y_true, y_pred, s=8, alpha=0.4)
    low, high = np.nanmin([y_true.min(), y_pred.min()]), np.nanmax([y_true.max(), y_pred.max()])
    left.plot([low, high], [low, high], ls="--", color="grey", lw=1, label="perfect prediction")
    left.set(xlabel="actual", ylabel="predicted", title="Predicted vs actual")
    left.legend(loc="upper left", fontsize=8)
    right.scatter(y_pred, residuals, s=8, alpha=0.4)
    right.axhline(0.0, ls="--", color="grey", lw=1)
    right.set(xlabel="predicted", ylabel="residual (actual - predicted)",
              title="Residuals vs predicted")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.suptitle(f"Residuals (n={y_true.size} shown)")
    return fig


def feature_importance_figure(
    names: Sequence[str],
    importances: Any,
    top: int = 20,
    *,
    errors: Any | None = None,
    xlabel: str = "importance",
    title: str = "Feature importance",
) -> Figure:
    """A horizontal bar chart of the ``top`` features by absolute importance, largest on top.

    ``errors`` (e.g. the standard deviation over permutation repeats) draws error bars.
    """
    values = np.asarray(importances, dtype=float).reshape(-1)
    if len(names) != values.size:
        raise ValueError(f"{len(names)} feature names but {values.size} importances")
    order = np.argsort(-np.abs(np.nan_to_num(values)), kind="stable")[: max(int(top), 1)]
    order = order[::-1]  # barh draws bottom-up; the largest goes on top
    err = None if errors is None else np.asarray(errors, dtype=float).reshape(-1)[order]

    fig = _figure(8.0, 1.5 + 0.35 * len(order))
    ax = fig.add_subplot()
    ax.barh(range(len(order)), values[order], xerr=err, color="tab:blue", alpha=0.85)
    ax.set_yticks(range(len(order)), [str(names[i]) for i in order])
    ax.axvline(0.0, color="black", lw=0.8)
    shown = f"top {len(order)} of {values.size}" if values.size > len(order) else f"{values.size}"
    ax.set(xlabel=xlabel, title=f"{title} ({shown} features)")
    ax.grid(axis="x", alpha=0.3)
    return fig
