"""`raymlops demo`, short: the whole loop end to end, then nothing left running."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from tests.e2e.conftest import BIN

pytestmark = pytest.mark.timeout(900)


def test_short_demo_runs_the_loop_and_leaves_the_cluster_clean(cli) -> None:
    proc = cli.run("demo", "--months", "2", "--trials", "2", "--ct-trials", "2", "--json", timeout=840)
    summary = json.loads(proc.stdout)
    assert [m["month"] for m in summary["months"]] == [3, 4]
    for month in summary["months"]:
        assert month["rows"] > 25_000 and 0.55 < month["auc_loop"] < 0.9
        assert month["decision"] in ("promoted", "rejected", "none") and month["share_drifted"] is not None
    assert summary["months"][0]["version"] == 1  # March is scored by the January-February champion
    serving = summary["serving"]
    assert serving["requests"] > 20 and serving["failed"] == 0, serving["errors"]
    assert summary["retrains"] >= 1 and len(summary["versions"]) >= 2
    report = (cli.root / "demo" / "report.html").read_text()
    assert report.count("data:image/png;base64,") == 2 and not re.search(r"(src|href)=\"https?://", report)
    # Every MLflow run the demo made is there: the search's trials and the CT decisions.
    runs = subprocess.run([str(BIN / "python"), "-c", (
        "import mlflow, sys; c = mlflow.tracking.MlflowClient(sys.argv[1]);"
        "print({e.name: len(c.search_runs([e.experiment_id])) for e in c.search_experiments()})"),
        f"sqlite:///{cli.root}/mlflow.db"], capture_output=True, text=True, timeout=120)
    counts = eval(runs.stdout)  # noqa: S307 - a dict literal we printed ourselves
    assert counts["raymlops-automl"] >= 3 and counts["raymlops-ct"] == 2
    status = cli.run("status", "--json", check=False)  # exits 1: nothing running
    assert json.loads(status.stdout)["running"] is False  # the demo took down the head it started
