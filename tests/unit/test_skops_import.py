"""skops imported without torch (raymlops.registry.formats.import_skops), in fresh interpreters."""

from __future__ import annotations

import json
import subprocess
import sys

TRUSTED = "import skops.io._trusted_types as t; print(json.dumps(sorted(t.SKLEARN_ESTIMATOR_TYPE_NAMES)))"


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout


def test_skops_import_leaves_torch_alone_and_trusts_the_same_estimators() -> None:
    shimmed = json.loads(_run(
        "import json, sys\n"
        "from raymlops.registry.formats import import_skops\n"
        "import_skops()\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "assert 'sklearn.externals.array_api_compat.torch' not in sys.modules, 'placeholder left behind'\n"
        + TRUSTED))
    plain = json.loads(_run("import json\n" + TRUSTED))
    assert shimmed == plain and len(plain) > 100


def test_a_model_round_trips_and_torch_still_imports_for_real_afterwards() -> None:
    out = _run(
        "import sys, numpy as np\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "from raymlops.registry.formats import deserialize, serialize\n"
        "X = np.arange(40, dtype=float).reshape(20, 2); y = (X[:, 0] > 19).astype(int)\n"
        "m = LogisticRegression().fit(X, y)\n"
        "data, meta = serialize(m, task='classification')\n"
        "back = deserialize(data, meta)\n"
        "assert (back.predict_proba(X) == m.predict_proba(X)).all()\n"
        "import sklearn.externals.array_api_compat.torch as shim\n"
        "print(hasattr(shim, '__file__'), 'torch' in sys.modules)\n")
    assert out.split() == ["True", "True"]
