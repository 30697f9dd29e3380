"""The training spec: one YAML file that names a user's labelled data and how to learn from it.

Everything that trains (``raymlops train SPEC``, ``raymlops ct run --spec SPEC``, the CT
service, ``jobs/train.py``, ``jobs/ct.py``, the Python API, the built-in demo) reads this one
schema, so a new data set needs a YAML file and no code::

    name: seattle-weather            # registered model
    task: multiclass                 # binary | multiclass | regression
    metric: log_loss                 # optional; the gate knows its direction
    labels:
      path: data/seattle_weather.parquet   # Parquet/CSV file or a folder of them, or `sql:`
      timestamp: date                # when the label's row happened (time zone required)
      label: weather
    features:
      columns: [precipitation, temp_max, temp_min, wind]   # inputs from the label table
      service: null                  # and/or a feature service joined point-in-time
    period: month                    # labels arrive in periods: hour|day|week|month|quarter|year
    window: {kind: sliding, periods: 12}

Relative paths are resolved against the spec file's folder. Every model is pydantic with
``extra="forbid"``: a misspelt key is an error that names it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic import ValidationError as PydanticError

from raymlops.exceptions import ConfigError
from raymlops.training.automl import TuneOptions
from raymlops.training.ct import CTRules

__all__ = ["CTSection", "FeatureInputs", "LabelSource", "SearchSection", "SqlQuery", "TrainSection",
           "TrainingSpec", "WindowSection", "load_spec", "parse_spec"]

Task = Literal["binary", "multiclass", "regression"]
PeriodUnit = Literal["hour", "day", "week", "month", "quarter", "year"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SqlQuery(_Strict):
    """Labels from a SQL query (any SQLAlchemy URL; PostgreSQL on a cluster)."""

    url: str = Field(description="SQLAlchemy URL, e.g. postgresql://user@host:5432/db.")
    query: str = Field(description="SELECT returning the timestamp, label, key and input columns.")


class LabelSource(_Strict):
    """Where the labelled rows are and which columns mean what."""

    path: str | None = Field(None, description="Parquet or CSV file, or a folder of them "
                                                "(date-partitioned folders included): a local "
                                                "path or s3://bucket/key.")
    sql: SqlQuery | None = Field(None, description="A SQL query instead of files.")
    timestamp: str = Field(description="Event-time column (timezone-aware): when the row happened; "
                                       "periods and point-in-time features are cut by it.")
    label: str = Field(description="The column the model learns to predict.")
    entity_keys: list[str] = Field(default_factory=list,
                                   description="Entity key columns (what the feature service joins on).")

    @model_validator(mode="after")
    def _one_source(self) -> LabelSource:
        if (self.path is None) == (self.sql is None):
            raise ValueError("give exactly one of labels.path or labels.sql")
        return self


class FeatureInputs(_Strict):
    """Model inputs: columns of the label table and/or a feature service."""

    service: str | None = Field(None, description="Feature service joined point-in-time on the entity keys "
                                                  "as of the timestamp.")
    columns: list[str] = Field(default_factory=list, description="Label-table columns used as inputs.")
    categorical: list[str] = Field(default_factory=list,
                                   description="Input columns to treat as categories even if numeric "
                                               "(text columns always are).")

    @model_validator(mode="after")
    def _some_inputs(self) -> FeatureInputs:
        if self.service is None and not self.columns:
            raise ValueError("features needs a service, columns, or both")
        unknown = [c for c in self.categorical if c not in self.columns]
        if unknown:
            raise ValueError(f"features.categorical names {unknown}, which are not in features.columns")
        return self


class WindowSection(_Strict):
    """How much history a model trains on, in periods."""

    kind: Literal["sliding", "expanding"] = Field("sliding", description="Sliding: the newest `periods`; "
                                                                         "expanding: everything so far.")
    periods: int = Field(2, ge=1, description="Periods in a sliding window (and in `train`'s default window).")


class TrainSection(_Strict):
    """What ``raymlops train`` fits on (CT picks its own windows)."""

    start: str | None = Field(None, description="First period, e.g. 2013-01 for months (default: the window "
                                                "ending at `end`).")
    end: str | None = Field(None, description="Last period (default: the newest period with labels).")
    valid_fraction: float = Field(0.25, gt=0, lt=1, description="Newest share of rows that validates.")


class SearchSection(TuneOptions):
    """The AutoML search (Ray Tune: TPE + ASHA): its budget, and how it runs on Tune."""

    families: list[str] | None = Field(None, description="Model families (default: every family of the task).")
    trials: int = Field(12, ge=1, description="Trials per search.")
    max_steps: int = Field(6, ge=1, description="Steps of an iterative trial (x25 trees/iterations, or epochs).")


class CTSection(CTRules):
    """Continuous training: the rules, and which periods the loop decides when."""

    start: str | None = Field(None, description="First period CT decides (default: the first after the "
                                                "champion's training window).")
    grace_periods: int = Field(0, ge=0, description="Periods to wait after a period ends for late labels "
                                                    "before deciding it (0: as soon as it ended).")


class TrainingSpec(_Strict):
    """One model's data, task and life cycle (see the module docstring for an example)."""

    name: str = Field(description="Registered model name.")
    task: Task = Field(description="binary, multiclass or regression.")
    metric: str | None = Field(None, description="What ranks trials and gates promotion (default: roc_auc, "
                                                 "log_loss or rmse by task).")
    labels: LabelSource
    features: FeatureInputs
    period: PeriodUnit = Field("month", description="Labels arrive, and CT decides, in these periods.")
    timezone: str = Field("UTC", description="Time zone periods are cut in (e.g. America/New_York).")
    window: WindowSection = Field(default_factory=WindowSection)
    train: TrainSection = Field(default_factory=TrainSection)
    search: SearchSection = Field(default_factory=SearchSection)
    ct: CTSection = Field(default_factory=CTSection)
    base_dir: str | None = Field(None, description="Folder relative paths resolve against (set to the spec "
                                                   "file's folder by load_spec).")

    @model_validator(mode="after")
    def _consistent(self) -> TrainingSpec:
        """Checks across fields; each names the field a user must change (ConfigError passes
        through pydantic unchanged, so the field is exact rather than the model's root)."""
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        from raymlops.exceptions import ValidationError
        from raymlops.training.objectives import check_metric, default_families, default_metric

        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"timezone {self.timezone!r} is not an IANA time zone name",
                              field="timezone") from None
        if self.features.service is not None and not self.labels.entity_keys:
            raise ConfigError("features.service needs labels.entity_keys (the columns it joins on)",
                              field="labels.entity_keys")
        clash = [c for c in self.features.columns if c in (self.labels.timestamp, self.labels.label)]
        if clash:
            raise ConfigError(f"features.columns {clash} include the timestamp or the label column",
                              field="features.columns")
        try:
            self.metric = check_metric(self.task, self.metric or default_metric(self.task))
        except ValidationError as exc:
            raise ConfigError(str(exc), field="metric") from None
        allowed = default_families(self.task)
        families = self.search.families or list(allowed)
        wrong = [f for f in families if f not in allowed]
        if wrong:
            raise ConfigError(f"search.families {wrong} do not apply to a {self.task} task; use "
                              f"{list(allowed)}", field="search.families")
        self.search.families = list(families)
        return self

    def resolve(self, path: str) -> str:
        """A path of the spec, absolute: URIs and absolute paths as given, others under base_dir."""
        if "://" in path or Path(path).is_absolute() or self.base_dir is None:
            return path
        return str(Path(self.base_dir) / path)

    def search_config(self, *, trials: int | None = None, max_steps: int | None = None,
                      alias: str | None = None, experiment: str | None = None,
                      warm_start: list[dict[str, Any]] | None = None) -> Any:
        """The AutoML SearchConfig this spec asks for (CT overrides trials, steps, alias)."""
        from raymlops.training.automl import SearchConfig

        s = self.search
        tune = s.model_dump(include=set(TuneOptions.model_fields))
        tune.update(experiment=experiment or s.experiment, alias=alias or s.alias)
        return SearchConfig(name=self.name, task=self.task, metric=self.metric, families=list(s.families or []),
                            num_samples=trials or s.trials, max_steps=max_steps or s.max_steps,
                            warm_start=list(warm_start or []), **tune)

    def ct_policy(self) -> Any:
        """The CTPolicy of this spec's ``ct`` section and window."""
        from raymlops.training.ct import CTPolicy

        return CTPolicy(model=self.name, task=self.task, metric=self.metric, window=self.window.kind,
                        window_periods=self.window.periods, families=list(self.search.families or []),
                        **self.ct.model_dump(include=set(CTRules.model_fields)))


def _field_path(error: dict[str, Any]) -> str:
    return ".".join(str(p) for p in error.get("loc", ())) or "spec"


def parse_spec(raw: Any, *, source: str = "spec", base_dir: str | Path | None = None) -> TrainingSpec:
    """Validate a spec given as a mapping; errors name the field (``labels.timestamp``...)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a training spec is a mapping of fields, got {type(raw).__name__}",
                          field="spec")
    data = dict(raw)
    if base_dir is not None and data.get("base_dir") is None:
        data["base_dir"] = str(base_dir)
    try:
        return TrainingSpec.model_validate(data)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}", field=exc.context.get("field", "spec")) from None
    except PydanticError as exc:
        first = exc.errors()[0]
        field = _field_path(first)
        message = first.get("msg", "invalid").removeprefix("Value error, ")
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"{source}: {field}: {message}{more}", field=field) from None


def load_spec(path: str | Path) -> TrainingSpec:
    """Read and validate a spec file; relative paths in it resolve against its folder."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no training spec file {path}", field="spec")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}", field="spec") from None
    return parse_spec(raw, source=str(path), base_dir=path.resolve().parent)
