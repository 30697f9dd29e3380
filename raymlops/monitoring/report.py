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


def _figure_png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def _overlay(name: str, ref: Any, cur: Any) -> str:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 2.6))
    ax = fig.add_subplot()
    if isinstance(ref, NumericSummary):
        both = np.concatenate([ref.values, cur.values])
        lo, hi = np.nanpercentile(both, [0.5, 99.5]) if len(both) else (0, 1)
        bins = np.linspace(lo, hi if hi > lo else lo + 1, 40)
        ax.hist(ref.values, bins=bins, alpha=0.55, density=True, label="reference", color="#4c72b0")
        ax.hist(cur.values, bins=bins, alpha=0.55, density=True, label="current", color="#dd8452")
        ax.set_ylabel("density")
    elif isinstance(ref, CategoricalSummary):
        cats = [c for c, _ in (ref.counts + cur.counts).most_common(15)]
        r = np.array([ref.counts.get(c, 0) for c in cats], dtype=float)
        c_ = np.array([cur.counts.get(c, 0) for c in cats], dtype=float)
        x = np.arange(len(cats))
        ax.bar(x - 0.2, r / max(r.sum(), 1), width=0.4, label="reference", color="#4c72b0")
        ax.bar(x + 0.2, c_ / max(c_.sum(), 1), width=0.4, label="current", color="#dd8452")
        ax.set_xticks(x, cats, rotation=45, ha="right", fontsize=7)
        ax.set_ylabel("share")
    ax.set_title(name)
    ax.legend(fontsize=7)
    return _figure_png(fig)


def render_html(report: dict[str, Any], title: str = "raymlops drift report") -> str:
    summaries = report.get("_summaries", {})
    rows, figures = [], []
    for name, col in report["columns"].items():
        verdict = "DRIFT" if col["drift"] else "ok"
        colour = "#c0392b" if col["drift"] else "#27ae60"
        p = "-" if col["p_value"] is None else f"{col['p_value']:.3g}"
        rows.append(
            f"<tr><td>{html.escape(name)}</td><td>{col['test']}</td><td>{col['statistic']:.4g}</td>"
            f"<td>{p}</td><td>{col['threshold']:g}</td>"
            f"<td style='color:{colour};font-weight:bold'>{verdict}</td></tr>"
        )
        if summaries:
            png = _overlay(name, summaries["reference"][name], summaries["current"][name])
            figures.append(f"<figure><img alt='{html.escape(name)}' src='data:image/png;base64,{png}'>"
                           f"<figcaption>{html.escape(name)}: {verdict}</figcaption></figure>")
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
<th>threshold</th><th>verdict</th></tr>
{''.join(rows)}
</table>
<h2>Distributions</h2>
{''.join(figures)}
</body></html>
"""
