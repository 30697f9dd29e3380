"""Data schemas (the TFDV role): infer one from training data, check new data against it.

The schema records, per column, its kind and dtype, the observed range (numbers), the set of
categories (strings, up to a cap), and the null rate. It is plain JSON so it can be stored
with a model version and shown to people. ``validate`` reports every violation per column:
missing column, wrong type, out of range, unseen category, null-rate jump.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

__all__ = ["Violation", "infer_schema", "validate"]

MAX_CATEGORIES = 1000


@dataclass(frozen=True)
class Violation:
    column: str
    kind: str  # missing_column | wrong_type | out_of_range | unseen_category | null_rate_jump
    detail: str
    count: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _kind(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series):
        return "categorical"
    if pd.api.types.is_numeric_dtype(series):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "timestamp"
    return "categorical"


def infer_schema(df: pd.DataFrame, max_categories: int = MAX_CATEGORIES) -> dict[str, Any]:
    """Per-column facts of the training data (JSON-safe)."""
    columns: dict[str, Any] = {}
    for name in df.columns:
        series = df[name]
        kind = _kind(series)
        entry: dict[str, Any] = {"kind": kind, "dtype": str(series.dtype),
                                 "null_rate": float(series.isna().mean()) if len(series) else 0.0}
        values = series.dropna()
        if kind == "numeric" and len(values):
            entry["min"], entry["max"] = float(values.min()), float(values.max())
        elif kind == "categorical":
            categories = values.astype(str).unique()
            if len(categories) <= max_categories:
                entry["categories"] = sorted(categories.tolist())
        columns[str(name)] = entry
    return {"rows": int(len(df)), "columns": columns}


def validate(df: pd.DataFrame, schema: dict[str, Any], null_rate_tolerance: float = 0.1,
             range_tolerance: float = 0.0) -> list[Violation]:
    """Every violation of ``schema`` in ``df`` (an empty list means the data is fine)."""
    out: list[Violation] = []
    for name, spec in schema["columns"].items():
        if name not in df.columns:
            out.append(Violation(name, "missing_column", "column is absent"))
            continue
        series = df[name]
        kind = _kind(series)
        if kind != spec["kind"]:
            out.append(Violation(name, "wrong_type",
                                 f"{series.dtype} ({kind}), expected {spec['dtype']} ({spec['kind']})"))
            continue
        values = series.dropna()
        if kind == "numeric" and "min" in spec and len(values):
            span = (spec["max"] - spec["min"]) * range_tolerance
            low = values < spec["min"] - span
            high = values > spec["max"] + span
            bad = int(low.sum() + high.sum())
            if bad:
                out.append(Violation(name, "out_of_range",
                                     f"{bad} values outside [{spec['min']:g}, {spec['max']:g}] "
                                     f"(seen {float(values.min()):g}..{float(values.max()):g})", bad))
        if kind == "categorical" and "categories" in spec and len(values):
            known = set(spec["categories"])
            as_text = values.astype(str)
            unseen = as_text[~as_text.isin(known)]
            if len(unseen):
                examples = ", ".join(sorted(unseen.unique())[:5])
                out.append(Violation(name, "unseen_category", f"{len(unseen)} values in unseen categories: {examples}",
                                     int(len(unseen))))
        rate = float(series.isna().mean()) if len(series) else 0.0
        if rate - spec["null_rate"] > null_rate_tolerance:
            out.append(Violation(name, "null_rate_jump",
                                 f"null rate {rate:.1%} vs {spec['null_rate']:.1%} in training",
                                 int(series.isna().sum())))
    return out
