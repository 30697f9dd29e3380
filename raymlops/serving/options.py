"""How one model is served: autoscaling, batching, limits, resources (one validated schema).

The same schema backs ``raymlops.serving.deploy(...)``, ``raymlops serve deploy`` flags and
the ``args`` of the Serve config YAML in ``cluster/``, so a typo is an error naming the field
in every entry point (``extra="forbid"``). The defaults fit a 2-core machine: fractional
CPUs so an ingress and two model replicas share one core with the platform actors.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic import ValidationError as PydanticValidationError

from raymlops.exceptions import ConfigError

__all__ = ["DeploymentOptions", "load_options"]


class DeploymentOptions(BaseModel):
    """Per-application serving options (see the field descriptions)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_replicas: int = Field(default=1, ge=1, description="Model replicas kept at all times.")
    max_replicas: int = Field(default=2, ge=1, description="Most model replicas autoscaling adds.")
    target_ongoing_requests: float = Field(
        default=8.0, gt=0,
        description="Autoscaling aims at this many in-flight requests per model replica.")
    max_batch_size: int = Field(
        default=32, ge=1, description="Most requests one @serve.batch call predicts together.")
    batch_wait_timeout_s: float = Field(
        default=0.0, ge=0,
        description="How long a batch waits to fill. 0: take what is queued now, so a lone "
        "request is never delayed and batches grow by themselves under load.")
    upscale_delay_s: float = Field(
        default=3.0, ge=0, description="Load must stay above target this long to add a replica.")
    downscale_delay_s: float = Field(
        default=60.0, ge=0, description="Load must stay below target this long to remove one.")
    colocate: bool = Field(
        default=True,
        description="Run the model inside the HTTP ingress replicas (one hop less; they then "
        "autoscale together). False: a separate Model deployment (e.g. on GPUs).")
    model_num_cpus: float = Field(default=0.25, gt=0, description="CPUs per model replica.")
    ingress_num_cpus: float = Field(default=0.1, gt=0, description="CPUs per ingress replica.")
    ingress_replicas: int = Field(
        default=1, ge=1,
        description="HTTP ingress replicas with colocate=False (colocated, they autoscale).")
    max_body_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024, description="Larger request bodies get 413.")
    max_rows: int = Field(default=10_000, ge=1, description="More rows per request get 413.")
    health_check_period_s: float = Field(
        default=5.0, gt=0, description="How often Serve calls each replica's check_health.")
    log_predictions: bool = Field(
        default=True, description="Write inputs, outputs, version and latency to Parquet.")
    log_flush_s: float = Field(
        default=2.0, gt=0, description="Prediction log: seconds between Parquet writes.")
    access_log: bool = Field(
        default=False,
        description="Serve's access log line per request in the replica logs. Off by default: "
        "every request is already counted in the metrics (and, with log_predictions, in the "
        "prediction log), and writing the line was ~5% of a replica's time under load.")

    def logging_config(self) -> dict[str, Any]:
        """Serve's per-deployment logging settings for these options."""
        return {"enable_access_log": self.access_log}

    @model_validator(mode="after")
    def _replicas_in_order(self) -> DeploymentOptions:
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"max_replicas ({self.max_replicas}) is below min_replicas ({self.min_replicas})")
        return self

    def autoscaling_config(self) -> dict[str, Any]:
        return {
            "min_replicas": self.min_replicas, "initial_replicas": self.min_replicas,
            "max_replicas": self.max_replicas,
            "target_ongoing_requests": self.target_ongoing_requests,
            "upscale_delay_s": self.upscale_delay_s, "downscale_delay_s": self.downscale_delay_s,
        }

    def max_ongoing_requests(self) -> int:
        """Per model replica: room for a full batch plus the next one filling."""
        return max(2 * self.max_batch_size, int(2 * self.target_ongoing_requests), 16)


def load_options(values: dict[str, Any] | None = None, **overrides: Any) -> DeploymentOptions:
    """Options from a mapping plus keyword overrides (``None`` ignored), typed errors."""
    merged = {**(values or {}), **{k: v for k, v in overrides.items() if v is not None}}
    try:
        return DeploymentOptions(**merged)
    except PydanticValidationError as exc:
        fields = [".".join(str(p) for p in e.get("loc", ())) or "<options>" for e in exc.errors()]
        detail = "; ".join(f"{f}: {e['msg']}" for f, e in zip(fields, exc.errors(), strict=True))
        raise ConfigError(f"invalid serving options: {detail}", fields=fields) from None
