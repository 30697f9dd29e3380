"""One loaded model version as a replica serves it: predictor, schemas, optional enrichment.

Kept apart from the Serve deployment so that the request path (validate -> enrich -> predict)
is a plain object, tested without Ray. A replica holds one ``LoadedVersion`` at a time and
swaps the reference when the alias moves; a request keeps the version it was validated
against until it is answered, so a swap never fails a request in flight.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from raymlops.config import Settings
from raymlops.exceptions import RaymlopsError, ValidationError
from raymlops.registry.formats import Predictor
from raymlops.serving.columns import Columns, Prepared, check_columns
from raymlops.serving.enrich import Enrichment
from raymlops.serving.schema import InputSchema, validate_frame

__all__ = ["LoadedVersion", "load_version"]


@dataclass
class LoadedVersion:
    predictor: Predictor
    schema: InputSchema | None
    enrichment: Enrichment | None = None
    loaded_at: float = field(default_factory=time.time)

    @classmethod
    def of(cls, predictor: Predictor, enrichment: Enrichment | None = None) -> LoadedVersion:
        meta = predictor.meta
        return cls(predictor, InputSchema.from_signature(meta.signature, meta.feature_names),
                   enrichment)

    @property
    def version(self) -> int:
        return self.predictor.version

    @cached_property
    def request_schema(self) -> InputSchema | None:
        """What a caller must send: the model's inputs, or keys + request-time fields (built
        once per version: every request is checked against it)."""
        if self.enrichment is None:
            return self.schema
        return self.enrichment.request_schema(self.schema)

    @property
    def classes(self) -> list[Any] | None:
        classes = getattr(self.predictor.model, "classes_", None)
        return np.asarray(classes).tolist() if classes is not None else None

    def prepare(self, frame: pd.DataFrame | Columns) -> pd.DataFrame | Prepared:
        """Validate (422 naming the field), enrich from the online store, order the columns.

        Plain columns (``dataframe_records``) of a version that serves compiled take the hot
        path, with no DataFrame; anything that path does not accept goes through pandas,
        which names the fault or accepts what the hot path leaves to it."""
        if isinstance(frame, Columns):
            fast = self._prepare_columns(frame)
            if fast is not None:
                return fast
            frame = frame.to_frame()
        if self.enrichment is None:
            return validate_frame(frame, self.schema)
        checked = validate_frame(frame, self.request_schema)
        enriched = self.enrichment.enrich(checked)
        # keys and service features the model does not take ride along, then are dropped
        full = validate_frame(enriched, self.schema,
                              passthrough=[*self.enrichment.keys, *self.enrichment.columns],
                              allow_null=self.enrichment.columns)
        return full[self.schema.names] if self.schema is not None else full

    def _prepare_columns(self, given: Columns) -> Prepared | None:
        schema = self.schema
        if self.predictor.compiled is None or schema is None:
            return None
        if self.enrichment is None:
            checked = check_columns(given.data, given.rows, schema)
        else:
            request = check_columns(given.data, given.rows, self.request_schema)  # type: ignore[arg-type]
            if request is None:
                return None
            enriched = self.enrichment.enrich_columns(request, given.rows)
            checked = check_columns(enriched, given.rows, schema,
                                    passthrough=[*self.enrichment.keys, *self.enrichment.columns],
                                    allow_null=self.enrichment.columns)
        if checked is None:
            return None
        return Prepared({name: checked[name] for name in schema.names}, given.rows, schema)

    def predict(self, frame: pd.DataFrame | Prepared, proba: bool) -> tuple[np.ndarray, np.ndarray | None]:
        compiled = self.predictor.compiled
        if compiled is not None and not (proba and self.predictor.meta.task == "regression"):
            # one run of the graph gives labels and probabilities together
            labels, probabilities = (compiled.outputs_of_columns(frame.columns) if isinstance(frame, Prepared)
                                     else compiled.outputs(self.predictor._frame(frame)))
            return np.asarray(labels), (np.asarray(probabilities) if proba else None)
        if isinstance(frame, Prepared):  # the original flavour takes a DataFrame
            frame = frame.to_frame()
        predictions = np.asarray(self.predictor.predict(frame))
        probabilities = None
        if proba:
            if self.predictor.meta.task == "regression":
                raise ValidationError(
                    f"model {self.predictor.name} v{self.version} is a regressor: it has no "
                    "probabilities", field="outputs")
            probabilities = np.asarray(self.predictor.predict_proba(frame))
        return predictions, probabilities

    def describe(self) -> dict[str, Any]:
        meta = self.predictor.meta
        request = self.request_schema
        return {
            "name": self.predictor.name,
            "version": self.version,
            "flavor": meta.flavor,
            # "onnx": the compiled model answers (it matched the original at registration)
            "runtime": "onnx" if self.predictor.compiled is not None else meta.flavor,
            "task": meta.task,
            "inputs": [c.__dict__ for c in request.columns] if request else None,
            "feature_service": self.enrichment.service if self.enrichment else None,
            "features": self.enrichment.columns if self.enrichment else [],
            "classes": self.classes,
            "loaded_at": self.loaded_at,
        }

    def close(self) -> None:
        if self.enrichment is not None:
            self.enrichment.stop()


def load_version(registry: Any, name: str, ref: int | str, settings: Settings,
                 threads: int = 1) -> LoadedVersion:
    """Registry -> object store -> predictor; with an online feature cache when it has a service.

    The bytes come from Ray's object store (the registry actor put them there once), so N
    replicas loading the same version cost one artifact read. ``threads``: ONNX Runtime's
    threads for a compiled model, the CPUs the replica was given (its default, one per core of
    the machine, would oversubscribe a node packed with replicas).
    """
    import ray

    from raymlops.registry.client import compiled_bytes, predictor_from

    info, (ref_obj,) = registry._call("model_ref", name, ref)
    predictor = predictor_from(info, ray.get(ref_obj), settings,
                               compiled=compiled_bytes(registry, name, int(info["version"])),
                             threads=threads)
    service = getattr(predictor.meta, "feature_service", None)
    enrichment = None
    if service:
        from raymlops.features.actor import FEATURES_ACTOR
        from raymlops.features.cache import OnlineFeatureCache
        from raymlops.features.client import FeatureStoreClient

        try:
            actor = ray.get_actor(FEATURES_ACTOR, namespace=settings.namespace)
        except ValueError as exc:
            raise RaymlopsError(f"model {name} needs feature service {service!r} but the "
                                "feature store actor is not running") from exc
        client = FeatureStoreClient(actor, settings)
        plan = client._call("resolve_service", service)
        enrichment = Enrichment.from_plan(plan, OnlineFeatureCache(client, service).start())
    return LoadedVersion.of(predictor, enrichment)
