"""Settings: defaults, precedence (flags > env > YAML > defaults) and errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from raymlops.config import Settings, load_settings, mask_password
from raymlops.exceptions import ConfigError


def test_defaults_are_the_local_embedded_platform(tmp_path: Path) -> None:
    s = load_settings(storage_root=tmp_path)
    assert s.storage_root == str(tmp_path.resolve())
    assert s.tracking_uri == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert s.artifact_location == str(tmp_path.resolve() / "mlartifacts")
    assert s.namespace == "raymlops"
    assert (s.dashboard_port, s.serve_port) == (8265, 8000)
    assert s.gcs_port != 6379  # Redis owns 6379 on our machines
    assert s.node_ip == "127.0.0.1" and s.serve_host == "127.0.0.1"
    assert s.auth_mode == "token"


def test_temp_dir_differs_per_storage_root(tmp_path: Path) -> None:
    a = load_settings(storage_root=tmp_path / "a")
    b = load_settings(storage_root=tmp_path / "b")
    assert a.ray_temp_dir != b.ray_temp_dir
    assert len(str(a.ray_temp_dir)) < 40  # Ray's unix socket paths must stay short


def test_env_overrides_yaml_and_flags_override_env(tmp_path: Path, monkeypatch) -> None:
    cfg = tmp_path / "raymlops.yaml"
    cfg.write_text("gcs_port: 6500\nserve_port: 9000\ndashboard_port: 8300\n")
    monkeypatch.setenv("RAYMLOPS_SERVE_PORT", "9100")
    s = load_settings(cfg, dashboard_port=8400)
    assert s.gcs_port == 6500  # from YAML
    assert s.serve_port == 9100  # env beats YAML
    assert s.dashboard_port == 8400  # flag beats YAML


def test_config_file_from_env(tmp_path: Path, monkeypatch) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("namespace: other\n")
    monkeypatch.setenv("RAYMLOPS_CONFIG", str(cfg))
    assert load_settings().namespace == "other"


def test_none_overrides_are_ignored(tmp_path: Path) -> None:
    assert load_settings(storage_root=tmp_path, serve_port=None).serve_port == 8000


def test_explicit_tracking_uri_is_kept(tmp_path: Path) -> None:
    uri = "postgresql://postgres@127.0.0.1:5432/test"
    assert load_settings(storage_root=tmp_path, tracking_uri=uri).tracking_uri == uri


@pytest.mark.parametrize(
    ("env", "value", "field"),
    [
        ("RAYMLOPS_DASHBOARD_PORT", "70000", "dashboard_port"),
        ("RAYMLOPS_GCS_PORT", "not-a-port", "gcs_port"),
        ("RAYMLOPS_AUTH_MODE", "password", "auth_mode"),
        ("RAYMLOPS_NAMESPACE", "bad namespace!", "namespace"),
        ("RAYMLOPS_NUM_GPUS", "-1", "num_gpus"),
    ],
)
def test_bad_env_value_names_the_field(monkeypatch, env: str, value: str, field: str) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert field in str(info.value) and env in str(info.value)
    assert info.value.context["fields"] == [field]
    assert info.value.http_status == 400


def test_unknown_yaml_key_is_an_error(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("serve_prot: 9000\n")
    with pytest.raises(ConfigError, match="unknown setting 'serve_prot'"):
        load_settings(cfg)


def test_missing_and_malformed_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_settings(listy)


def test_settings_are_frozen(tmp_path: Path) -> None:
    s = load_settings(storage_root=tmp_path)
    from pydantic import ValidationError as PydanticValidationError

    with pytest.raises(PydanticValidationError):
        s.serve_port = 1  # type: ignore[misc]


def test_mask_password() -> None:
    assert mask_password("postgresql://u:secret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert mask_password("postgresql://u@h/db") == "postgresql://u@h/db"
    assert mask_password("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"


def test_public_dict_masks_database_password(tmp_path: Path) -> None:
    s = load_settings(storage_root=tmp_path, tracking_uri="postgresql://u:hunter2@h/db")
    assert "hunter2" not in str(s.public_dict())


def test_every_field_has_a_description() -> None:
    missing = [n for n, f in Settings.model_fields.items() if not f.description]
    assert missing == []
