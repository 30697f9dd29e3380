"""Platform settings: one pydantic model, read from an optional YAML file and ``RAYMLOPS_*`` env.

Precedence (highest first): keyword overrides (CLI flags) > ``RAYMLOPS_*`` environment >
YAML file (``--config`` or ``RAYMLOPS_CONFIG``) > defaults. The defaults are the safe local
embedded platform (Metaflow's ``DEFAULT_DATASTORE="local"`` idea): a Ray head on 127.0.0.1 with
token auth, MLflow on a SQLite file and artifacts under the storage root. Unknown keys are an
error (``extra="forbid"``) so a typo never silently falls back to a default.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from raymlops.exceptions import ConfigError
from raymlops.storage import Storage, normalize_uri

__all__ = ["ENV_PREFIX", "Settings", "load_settings"]

ENV_PREFIX = "RAYMLOPS_"
CONFIG_FILE_ENV = "RAYMLOPS_CONFIG"
REDIS_DEFAULT_PORT = 6379

Port = int


class Settings(BaseSettings):
    """Everything a driver needs to find (or start) the same platform."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="forbid", validate_default=True, frozen=True
    )

    storage_root: str = Field(
        default_factory=lambda: str(Path.home() / ".raymlops"),
        description="Where the platform keeps its files (datasets, offline store, prediction "
        "log, reports, MLflow artifacts, Tune results): a local folder, file:///path, or "
        "s3://bucket/prefix on any S3-compatible store (configured by the standard AWS_* "
        "variables). On a cluster of several nodes it must be a store every node reaches: "
        "s3://, or a folder mounted at the same path on every node (storage_shared).",
    )
    storage_shared: bool = Field(
        default=False,
        description="Declare a local storage_root a shared mount (NFS, EFS...) that every node "
        "sees at the same path, so a cluster of several nodes accepts it.",
    )
    tracking_uri: str | None = Field(
        default=None,
        description="MLflow tracking and registry URI (SQLAlchemy URL or file path). "
        "Default: sqlite:///<local_dir>/mlflow.db; on a cluster of several hosts a PostgreSQL "
        "URL (every host reaches it).",
    )
    feature_registry_uri: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the platform's own tables: feature definitions, "
        "materialization watermarks, alert history. Default: sqlite:///<local_dir>/features.db; "
        "on a cluster of several hosts a PostgreSQL URL (every host reaches it).",
    )
    artifact_location: str | None = Field(
        default=None,
        description="Where MLflow stores run artifacts and model files (local path or URI). "
        "Default: <storage_root>/mlartifacts.",
    )
    ray_address: str | None = Field(
        default=None,
        description="Address of a running Ray cluster to attach to (host:port of its GCS, or "
        "'auto'). Empty: use RAY_ADDRESS, else start (or reuse) a local head.",
    )
    namespace: str = Field(
        default="raymlops",
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Ray namespace holding the platform's named, detached actors.",
    )
    node_ip: str = Field(
        default="127.0.0.1", description="IP address a locally started head binds to."
    )
    gcs_port: Port = Field(
        default=6385,
        ge=1024,
        le=65535,
        description="GCS port of a locally started head. Never Redis's 6379 unless set so.",
    )
    dashboard_host: str = Field(
        default="127.0.0.1", description="Host the Ray dashboard and job API bind to."
    )
    dashboard_port: Port = Field(
        default=8265, ge=1024, le=65535, description="Port of the Ray dashboard and job API."
    )
    serve_host: str = Field(default="127.0.0.1", description="Host Ray Serve's HTTP proxy binds to.")
    serve_port: Port = Field(
        default=8000, ge=1024, le=65535, description="Port of Ray Serve's HTTP proxy."
    )
    inference_token: str | None = Field(
        default=None,
        description="Bearer token the model endpoints ask for (Authorization: Bearer <token>; "
        "401 without it). Empty: none when serve_host is a loopback address; otherwise one is "
        "generated once and kept in <state_dir>/inference-token (mode 0600).",
    )
    serve_haproxy: bool = Field(
        default=True,
        description="Serve through Ray Serve's HAProxy mode (RAY_SERVE_ENABLE_HA_PROXY=1 for a "
        "locally started head): HAProxy routes each connection straight to an ingress "
        "replica's own HTTP server, no Python proxy or Ray RPC per request (4x the "
        "throughput of Serve's Python proxy on 2 cores). Everything it binds stays on "
        "serve_host (see raymlops._haproxy). False: Serve's Python proxy.",
    )
    auth_mode: Literal["token", "disabled"] = Field(
        default="token",
        description="Ray authentication for a locally started head: 'token' (a token is "
        "made in ~/.ray/auth_token when none exists) or 'disabled'.",
    )
    ray_temp_dir: Path | None = Field(
        default=None,
        description="Ray's temp/session folder for a locally started head. Default: "
        "/tmp/raymlops-<hash of storage_root>, so heads of different roots never mix.",
    )
    num_cpus: int | None = Field(
        default=None, ge=0, description="CPUs a locally started head offers (default: all)."
    )
    num_gpus: int | None = Field(
        default=None, ge=0, description="GPUs a locally started head offers (default: detected)."
    )
    scoring_pool_idle_s: float = Field(
        default=300.0, ge=0,
        description="Batch prediction's scoring actors of a model version stay up this many "
        "seconds after their last unit, so the next job of that version (CLI, job or Python "
        "API) starts scoring at once. Idle, they hold no CPUs, only their memory. 0: each job "
        "starts its own and stops them when it ends.",
    )
    gcs_storage: Literal["memory", "redis"] = Field(
        default="memory",
        description="Where a locally started head's GCS keeps the cluster's state: 'memory', "
        "or 'redis' (fault tolerant: a restarted GCS recovers it from redis_url, under a key "
        "namespace of its own that `raymlops down` deletes).",
    )
    online_store: Literal["log", "redis"] = Field(
        default="log",
        description="Online feature store backend: 'log' (actor memory + fsync'ed log under "
        "the storage root) or 'redis'.",
    )
    materialize_local_below_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=0,
        description="Materialization reads a view's offline Parquet in the feature store "
        "actor when its files in the window are smaller than this, else with Ray Data across "
        "the cluster (0: always Ray Data).",
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0", description="Redis for the 'redis' online store."
    )
    redis_prefix: str = Field(
        default="raymlops", description="Key prefix of everything raymlops writes to Redis."
    )
    trusted_sources: list[str] = Field(
        default_factory=list,
        description="Artifact URI prefixes whose pickle-format models may be loaded. Empty: "
        "pickles are never loaded (skops and torch state_dicts always are).",
    )
    start_timeout_s: float = Field(
        default=60.0, gt=0, description="How long to wait for a head to come up."
    )

    @field_validator("storage_root", mode="before")
    @classmethod
    def _normal_root(cls, value: Any) -> str:
        try:
            return normalize_uri(value)
        except (TypeError, ConfigError) as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _fill_derived(self) -> Settings:
        root = self.storage_root
        local = self.local_dir
        derived: dict[str, Any] = {}
        if self.tracking_uri is None:
            derived["tracking_uri"] = f"sqlite:///{local / 'mlflow.db'}"
        if self.feature_registry_uri is None:
            derived["feature_registry_uri"] = f"sqlite:///{local / 'features.db'}"
        if self.artifact_location is None:
            derived["artifact_location"] = self.storage.uri_of("mlartifacts")
        if self.ray_temp_dir is None:
            digest = hashlib.sha256(root.encode()).hexdigest()[:8]
            derived["ray_temp_dir"] = Path(f"/tmp/raymlops-{digest}")  # noqa: S108 - short: socket paths
        for key, value in derived.items():
            object.__setattr__(self, key, value)
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003 - pydantic's hook signature
        file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        yaml_values = _YAML_VALUES.get()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if yaml_values:
            sources.append(InitSettingsSource(settings_cls, init_kwargs=yaml_values))
        return tuple(sources)

    # -- derived locations (one place that knows the layout under the root) --------------------

    @property
    def storage(self) -> Storage:
        """The storage root, for code on any node (see :mod:`raymlops.storage`)."""
        return Storage(self.storage_root)

    @property
    def local_dir(self) -> Path:
        """This machine's own folder for this platform: the storage root when it is local,
        else ``~/.raymlops/local-<hash of the root>`` (what only the machine that runs
        `raymlops up` needs: its run state and the default SQLite files)."""
        if self.storage.is_local:
            return Path(self.storage_root)
        digest = hashlib.sha256(self.storage_root.encode()).hexdigest()[:8]
        return Path.home() / ".raymlops" / f"local-{digest}"

    @property
    def state_dir(self) -> Path:
        """Where `raymlops up` records what it started, so `down` stops only that."""
        return self.local_dir / "run"

    @property
    def dashboard_url(self) -> str:
        return f"http://{self.dashboard_host}:{self.dashboard_port}"

    @property
    def serve_url(self) -> str:
        return f"http://{self.serve_host}:{self.serve_port}"

    def public_dict(self) -> dict[str, Any]:
        """Settings as JSON-safe values, with any password in a URI masked."""
        data = self.model_dump(mode="json")
        for key in ("tracking_uri", "feature_registry_uri", "artifact_location", "ray_address",
                    "redis_url"):
            if data.get(key):
                data[key] = mask_password(data[key])
        if data.get("inference_token"):
            data["inference_token"] = "***"  # noqa: S105 - the mask that replaces it
        return data


class _YamlValues:
    """Carries the YAML file's values into ``settings_customise_sources`` for one load."""

    def __init__(self) -> None:
        self._values: dict[str, Any] | None = None

    def get(self) -> dict[str, Any] | None:
        return self._values

    def set(self, values: dict[str, Any] | None) -> None:
        self._values = values


_YAML_VALUES = _YamlValues()


def mask_password(uri: str) -> str:
    """``postgresql://u:secret@h/db`` -> ``postgresql://u:***@h/db``; other strings unchanged."""
    if "://" not in uri or "@" not in uri:
        return uri
    scheme, rest = uri.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    if ":" in creds:
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return uri


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist", field="config_file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}", field="config_file") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings", field="config_file")
    return data


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build the settings; any invalid value raises :class:`ConfigError` naming the field.

    ``overrides`` whose value is ``None`` are ignored, so CLI options can be passed through
    unconditionally.
    """
    path = config_file or os.environ.get(CONFIG_FILE_ENV)
    yaml_values = _read_yaml(Path(path).expanduser()) if path else None
    given = {k: v for k, v in overrides.items() if v is not None}
    _YAML_VALUES.set(yaml_values)
    try:
        return Settings(**given)
    except ValidationError as exc:
        raise ConfigError(_describe(exc), fields=[_field_name(e) for e in exc.errors()]) from None
    finally:
        _YAML_VALUES.set(None)


def _field_name(error: Any) -> str:
    return ".".join(str(p) for p in error.get("loc", ())) or "<settings>"


def _describe(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        name = _field_name(error)
        env = f"{ENV_PREFIX}{name.upper()}"
        got = error.get("input")
        if error.get("type") == "extra_forbidden":
            lines.append(f"unknown setting '{name}' (valid: {', '.join(Settings.model_fields)})")
        else:
            lines.append(f"invalid setting '{name}' ({env}): {error.get('msg')} (got {got!r})")
    return "; ".join(lines)
