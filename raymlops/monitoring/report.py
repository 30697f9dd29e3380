"""A self-contained HTML drift report: verdicts plus per-column overlays a person can scan.

Everything is inline (PNG figures as base64 data URIs, CSS in the page): the file can be
mailed, attached to an MLflow run or opened offline.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import numpy as np

from raymlops.monitoring.summaries import CategoricalSummary, NumericSummary

__all__ = ["render_html"]

_REF, _CUR = "#4c72b0", "#dd8452"  # reference blue, current orange (tests look for them)


def _figure_png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def _ecdf(values: np.ndarray, points: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """The ECDF at ``points`` quantiles: the curve looks the same, the image stays small."""
    if len(values) == 0:
        return np.empty(0), np.empty(0)
    probs = np.linspace(0.0, 1.0, min(points, len(values)))
    return np.quantile(values, probs), probs


def _numeric_panels(fig: Any, ref: NumericSummary, cur: NumericSummary) -> None:
    """Histogram overlay (where the mass moved) and ECDF overlay (what KS measures), with the
    largest vertical gap between the two ECDFs marked."""
    hist, cdf = fig.subplots(1, 2)
    both = np.concatenate([ref.values, cur.values])
    lo, hi = np.nanpercentile(both, [0.5, 99.5]) if len(both) else (0, 1)
    bins = np.linspace(lo, hi if hi > lo else lo + 1, 40)
    hist.hist(ref.values, bins=bins, alpha=0.55, density=True, label="reference", color=_REF)
    hist.hist(cur.values, bins=bins, alpha=0.55, density=True, label="current", color=_CUR)
    hist.set_ylabel("density")
    hist.legend(fontsize=7)
    for summary, colour, label in ((ref, _REF, "reference"), (cur, _CUR, "current")):
        x, y = _ecdf(summary.values)
        cdf.step(x, y, where="post", color=colour, label=label)
    grid = np.sort(both)
    if len(grid):
        gap = (np.searchsorted(np.sort(ref.values), grid, side="right") / max(len(ref.values), 1)
               - np.searchsorted(np.sort(cur.values), grid, side="right") / max(len(cur.values), 1))
        i = int(np.argmax(np.abs(gap)))
        f_ref = np.searchsorted(np.sort(ref.values), grid[i], side="right") / len(ref.values)
        cdf.vlines(grid[i], f_ref - gap[i], f_ref, color="#333", linestyles="dashed",
                   label=f"max gap {abs(gap[i]):.2f}")
    cdf.set_xlim(lo, hi if hi > lo else lo + 1)
    cdf.set_ylabel("ECDF")
    cdf.legend(fontsize=7)


def _categorical_panel(fig: Any, ref: CategoricalSummary, cur: CategoricalSummary) -> None:
    ax = fig.subplots()
    cats = [c for c, _ in (ref.counts + cur.counts).most_common(15)]
    r = np.array([ref.counts.get(c, 0) for c in cats], dtype=float)
    c_ = np.array([cur.counts.get(c, 0) for c in cats], dtype=float)
    x = np.arange(len(cats))
    ax.bar(x - 0.2, r / max(ref.count, 1), width=0.4, label="reference", color=_REF)
    ax.bar(x + 0.2, c_ / max(cur.count, 1), width=0.4, label="current", color=_CUR)
    ax.set_xticks(x, cats, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("share")
    ax.legend(fontsize=7)


def _overlay(name: str, ref: Any, cur: Any) -> str:
    """One PNG per column: histogram + ECDF overlays for numbers, category shares otherwise."""
    from matplotlib.figure import Figure

    numeric = isinstance(ref, NumericSummary)
    fig = Figure(figsize=(9 if numeric else 5, 2.8), layout="constrained")
    if numeric:
        _numeric_panels(fig, ref, cur)
    else:
        _categorical_panel(fig, ref, cur)
    fig.suptitle(name, fontsize=10)
    return _figure_png(fig)


def render_html(report: dict[str, Any], title: str = "raymlops drift report") -> str:
    """The page for ``report`` (what ``drift_report`` returned).

    With the report's ``_summaries`` (a fresh result) each column gets its overlay figure;
    from a JSON round trip only the table is left. Rows and figures carry ``data-column`` and
    ``data-verdict`` so tools (and the headless-browser test) can read verdicts from the DOM.
    """
    summaries = report.get("_summaries", {})
    nulls = report.get("null_rates", {})
    rows, figures = [], []
    for name, col in report["columns"].items():
        verdict = "DRIFT" if col["drift"] else "ok"
        colour = "#c0392b" if col["drift"] else "#27ae60"
        p = "-" if col["p_value"] is None else f"{col['p_value']:.3g}"
        key = html.escape(str(name))
        rate = nulls.get(name)
        null_cell = "-" if not rate else f"{rate['reference']:.1%} / {rate['current']:.1%}"
        threshold = "-" if col.get("threshold") is None else f"{col['threshold']:g}"
        rows.append(
            f"<tr data-column='{key}' data-verdict='{verdict.lower()}'><td>{key}</td>"
            f"<td>{html.escape(str(col['test']))}</td><td>{col['statistic']:.4g}</td>"
            f"<td>{p}</td><td>{threshold}</td><td>{null_cell}</td>"
            f"<td class='verdict-cell' style='color:{colour};font-weight:bold'>{verdict}</td></tr>"
        )
        if summaries:
            png = _overlay(str(name), summaries["reference"][name], summaries["current"][name])
            figures.append(f"<figure data-column='{key}' data-verdict='{verdict.lower()}'>"
                           f"<img alt='{key} overlay' src='data:image/png;base64,{png}'>"
                           f"<figcaption>{key}: {verdict}</figcaption></figure>")
    auc = report.get("domain_classifier_auc")
    verdict = "DATASET DRIFT" if report["dataset_drift"] else "no dataset drift"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 4px 10px; }}
th {{ background: #f4f4f4; }} figure {{ display: inline-block; margin: 8px; }}
.verdict {{ font-size: 1.4em; font-weight: bold; color: {'#c0392b' if report['dataset_drift'] else '#27ae60'}; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="verdict" id="verdict">{verdict}</p>
<p>{report['share_drifted']:.0%} of {len(report['columns'])} columns drifted;
reference {report.get('reference_rows', '?')} rows, current {report.get('current_rows', '?')} rows.
{f"Domain classifier ROC AUC: {auc:.3f} (0.5 = indistinguishable)." if auc is not None else ""}</p>
<table id="columns"><tr><th>column</th><th>test</th><th>statistic</th><th>p-value</th>
<th>threshold</th><th>nulls (ref / cur)</th><th>verdict</th></tr>
{''.join(rows)}
</table>
<h2>Distributions</h2>
<p>Numeric columns: histogram and ECDF of reference (blue) and current (orange), the
dashed line marks the largest ECDF gap (the KS statistic). Categorical: shares of the top
categories.</p>
{''.join(figures)}
</body></html>
"""
