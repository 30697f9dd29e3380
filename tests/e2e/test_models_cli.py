"""`raymlops models ...` and `raymlops status` as a user runs them against a live platform."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(300)

REGISTER = """
import numpy as np, pandas as pd
from sklearn.linear_model import LogisticRegression
from raymlops.registry import RegistryClient
client = RegistryClient.connect()
rng = np.random.default_rng(0)
X = pd.DataFrame({"temp": rng.normal(size=100), "visib": rng.normal(size=100)})
y = (X["temp"] > 0).astype(int)
for i, c in enumerate((1.0, 0.3, 0.1)):
    client.register("cli-models", LogisticRegression(C=c).fit(X, y), input_example=X.head(3),
                    lineage={"metrics": {"roc_auc": 0.7 + i / 10}, "data_window": ["2013-01-01", "2013-03-01"]},
                    aliases=["champion"] if i == 0 else ["challenger"] if i == 2 else [])
print("registered")
"""


def _mine(models: list[dict]) -> list[dict]:
    """This test's model among those of the shared platform."""
    return [m for m in models if m["name"] == "cli-models"]


def test_models_commands_end_to_end(platform_cli) -> None:
    cli = platform_cli
    proc = subprocess.run([sys.executable, "-c", REGISTER], env=cli.env, capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr

    listed = _mine(cli.json("models", "list"))
    assert listed == [{"name": "cli-models", "versions": 3, "latest": 3,
                       "aliases": {"challenger": 3, "champion": 1}}]
    table = cli.run("models", "list").stdout
    assert "cli-models" in table and "champion=v1" in table

    shown = cli.json("models", "show", "cli-models")
    assert [v["version"] for v in shown] == [1, 2, 3]
    assert shown[2]["lineage"]["metrics"]["roc_auc"] == pytest.approx(0.9)
    assert "roc_auc=0.9" in cli.run("models", "show", "cli-models").stdout

    assert cli.json("models", "promote", "cli-models") == {
        "name": "cli-models", "champion": 3, "previous": 1}
    assert cli.json("models", "alias", "cli-models", "canary", "2")["aliases"] == ["canary"]
    assert cli.json("models", "rollback", "cli-models")["champion"] == 1
    assert cli.json("models", "delete", "cli-models", "2") == {"name": "cli-models", "deleted": 2}

    status = cli.json("status")
    assert _mine(status["models"]) == [{"name": "cli-models", "versions": 2, "latest": 3,
                                 "aliases": {"champion": 1, "previous": 3}}]
    assert "cli-models" in cli.run("status").stdout

    # Bad input: one clear line, exit 1, no traceback.
    for args, needle in (
        (("models", "show", "nope"), "ModelNotFoundError"),
        (("models", "delete", "cli-models", "1"), "ConflictError"),
        (("models", "alias", "cli-models", "v9", "1"), "ValidationError"),
        (("models", "promote", "cli-models", "42"), "VersionNotFoundError"),
    ):
        bad = cli.run(*args, check=False)
        assert bad.returncode == 1, args
        assert needle in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
