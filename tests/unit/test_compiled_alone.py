"""A compiled scikit-learn model runs from its bytes and the version's record alone: the
original (whose loading imports all of scikit-learn through skops) loads only if asked."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from raymlops.config import load_settings
from raymlops.registry.client import predictor_from
from raymlops.registry.compiled import load_compiled_alone
from raymlops.registry.formats import DeferredModel
from raymlops.serving.batch import score_frame
from tests.unit.compiled_versions import compiled_version

REPO = Path(__file__).resolve().parents[2]


def _version(family: str, tmp_path: Path) -> tuple[dict, bytes, bytes, pd.DataFrame]:
    _, meta, blob, onnx, X = compiled_version(family)
    info = {"name": "m", "version": 1, "source": str(tmp_path), "meta": dataclasses.asdict(meta)}
    return info, blob, onnx, X


@pytest.mark.parametrize("family", ["logreg", "hgb"])
def test_the_compiled_model_alone_scores_like_the_original_without_loading_it(
        family: str, tmp_path: Path) -> None:
    info, blob, onnx, X = _version(family, tmp_path)
    settings = load_settings(storage_root=tmp_path / "root")
    eager = predictor_from(info, blob, settings, compiled=onnx)
    alone = predictor_from(info, blob, settings, compiled=onnx, defer_original=True)
    assert isinstance(alone.model, DeferredModel)
    frame = X.assign(row_id=np.arange(len(X)))
    ours, theirs = score_frame(alone, frame, []), score_frame(eager, frame, [])
    pd.testing.assert_frame_equal(ours, theirs)
    assert list(alone.classes) == list(eager.model.classes_)
    assert alone.model._model is None  # scoring never loaded the original
    assert alone.model.n_features_in_ == eager.model.n_features_in_  # asked for: it loads


def test_a_scoring_process_never_imports_skops(tmp_path: Path) -> None:
    info, blob, onnx, X = _version("logreg", tmp_path)
    (tmp_path / "model.bin").write_bytes(blob)
    (tmp_path / "model.onnx").write_bytes(onnx)
    (tmp_path / "info.json").write_text(json.dumps(info))
    X.head(50).to_parquet(tmp_path / "rows.parquet")
    code = f"""
import json, sys
from pathlib import Path
import numpy as np, pandas as pd
from raymlops.config import load_settings
from raymlops.registry.client import predictor_from
from raymlops.serving.batch import score_frame
d = Path({str(tmp_path)!r})
p = predictor_from(json.loads((d / "info.json").read_text()), (d / "model.bin").read_bytes(),
                   load_settings(storage_root=d / "root"), compiled=(d / "model.onnx").read_bytes(),
                   defer_original=True)
frame = pd.read_parquet(d / "rows.parquet")
out = score_frame(p, frame.assign(row_id=np.arange(len(frame))), [])
assert len(out) == 50
sys.exit(3 if any(m.startswith("skops") for m in sys.modules) else 0)
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_a_record_without_what_the_model_needs_loads_the_original(tmp_path: Path) -> None:
    """Versions registered before the record kept kind, inputs and classes still load."""
    info, blob, onnx, _ = _version("logreg", tmp_path)
    for key in ("kind", "input_names", "classes", "onnx_task", "matrix_input"):
        info["meta"]["compiled"].pop(key)
    from raymlops.registry.formats import ArtifactMeta

    assert load_compiled_alone(onnx, ArtifactMeta(**info["meta"])) is None
    predictor = predictor_from(info, blob, load_settings(storage_root=tmp_path / "root"),
                               compiled=onnx, defer_original=True)
    assert not isinstance(predictor.model, DeferredModel) and predictor.compiled is not None
