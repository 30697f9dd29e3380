"""`ray job submit -- python jobs/status.py` against a head started by `raymlops up` (the
shared one)."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import REPO
from tests.e2e.conftest import BIN

pytestmark = pytest.mark.timeout(300)


def _submit(cli, *, auth: bool) -> subprocess.CompletedProcess:
    env = dict(cli.env)
    if auth:
        env["RAY_AUTH_MODE"] = "token"
    return subprocess.run(
        [str(BIN / "ray"), "job", "submit", "--address", cli.dashboard,
         "--working-dir", str(REPO), "--", "python", "jobs/status.py"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=240,
    )


def test_job_submitted_with_token_runs_with_project_installed(platform_cli) -> None:
    cli = platform_cli
    proc = _submit(cli, auth=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "succeeded" in out
    # The job attached through RAY_ADDRESS and found the platform `up` created, with the
    # platform's storage root (not the job's own defaults).
    assert '"raymlops-platform"' in out and '"ALIVE"' in out
    assert str(cli.root.resolve()) in out


def test_job_api_refuses_a_client_without_the_token(platform_cli, tmp_path) -> None:
    cli = platform_cli
    env_home = tmp_path / "no-token-home"
    env_home.mkdir()
    cli.env["HOME"] = str(env_home)  # no ~/.ray/auth_token for this client
    proc = _submit(cli, auth=True)
    assert proc.returncode != 0
    assert "token" in (proc.stdout + proc.stderr).lower()
