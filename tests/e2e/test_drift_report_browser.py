"""The drift report as a person sees it: real January vs July weather, rendered by headless
Chromium with the network cut off. `.ci/run` installs Debian's chromium; without it this test
fails (it never skips), because "the report renders" is the claim under test."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from raymlops.datasets.flights import load_weather
from raymlops.monitoring.drift import drift_report
from raymlops.monitoring.report import render_html

pytestmark = pytest.mark.timeout(300)
COLUMNS = ["temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip",
           "pressure", "visib", "origin"]
REF_RGB, CUR_RGB = (0x4C, 0x72, 0xB0), (0xDD, 0x84, 0x52)  # report.py's overlay colours


class _Page(HTMLParser):
    """Rows and figures by data-column, every img src, every external reference."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, str] = {}
        self.figures: dict[str, str] = {}
        self.images: dict[str, list[str]] = {}
        self.refs: list[str] = []
        self.verdict_text: dict[str, str] = {}
        self._figure: str | None = None
        self._row: str | None = None
        self._in_verdict = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for key in ("src", "href", "srcset", "poster", "data"):
            if a.get(key) and key != "data":
                self.refs.append(a[key])
        if tag == "tr" and "data-column" in a:
            self._row = a["data-column"]
            self.rows[self._row] = a["data-verdict"]
        if tag == "td" and "verdict-cell" in (a.get("class") or ""):
            self._in_verdict = True
        if tag == "figure" and "data-column" in a:
            self._figure = a["data-column"]
            self.figures[self._figure] = a["data-verdict"]
        if tag == "img" and self._figure is not None:
            self.images.setdefault(self._figure, []).append(a.get("src") or "")
        if tag == "link" or (tag == "script" and "src" in a):
            self.refs.append(f"<{tag}> {a}")

    def handle_endtag(self, tag: str) -> None:
        if tag == "figure":
            self._figure = None
        if tag == "td":
            self._in_verdict = False

    def handle_data(self, data: str) -> None:
        if self._in_verdict and self._row is not None and data.strip():
            self.verdict_text[self._row] = data.strip()


def _parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    return page


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("chromium is not installed: `.ci/run` installs it "
                    "(apt-get install -y --no-install-recommends chromium)")
    return found


def _chromium_run(*args: str) -> subprocess.CompletedProcess:
    # --host-resolver-rules makes every host lookup fail: the page must need no network.
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--host-resolver-rules=MAP * ~NOTFOUND", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def _pixels_near(image: np.ndarray, rgb: tuple[int, int, int], tol: int = 12) -> int:
    return int((np.abs(image[..., :3].astype(int) - np.array(rgb)).max(axis=-1) <= tol).sum())


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    weather = load_weather().to_pandas()
    result = drift_report(weather[weather["month"] == 1][COLUMNS],
                          weather[weather["month"] == 7][COLUMNS])
    path = tmp_path_factory.mktemp("report") / "drift.html"
    path.write_text(render_html(result))
    return path, result


def test_report_is_self_contained(report_file) -> None:
    path, _ = report_file
    text = path.read_text()
    page = _parse(text)
    assert page.refs, "the report should reference its images"
    outside = [r for r in page.refs if not r.startswith(("data:", "#"))]
    assert outside == []
    without_data = re.sub(r"data:[^'\"]+", "", text)
    assert not re.search(r"https?://|url\(|@import", without_data)


def test_chromium_renders_every_verdict_and_overlay(report_file, tmp_path: Path) -> None:
    path, result = report_file
    assert result["dataset_drift"] is True  # winter vs summer
    dom = _chromium_run("--dump-dom", path.as_uri()).stdout
    page = _parse(dom)
    want = {c: "drift" if col["drift"] else "ok" for c, col in result["columns"].items()}
    assert set(want) == set(COLUMNS)
    assert page.rows == want  # every column's verdict, as the browser built the table
    assert page.verdict_text == {c: "DRIFT" if v == "drift" else "ok" for c, v in want.items()}
    assert page.figures == want
    for column in COLUMNS:
        (src,) = page.images[column]
        assert src.startswith("data:image/png;base64,") and len(src) > 5000, column
    assert 'id="verdict">DATASET DRIFT<' in dom

    # The images decoded and were painted: the overlays' blue and orange are on screen.
    shot = tmp_path / "report.png"
    _chromium_run("--window-size=1400,4200", "--hide-scrollbars", f"--screenshot={shot}",
                  path.as_uri())
    from PIL import Image

    image = np.asarray(Image.open(shot).convert("RGB"))
    assert image.shape[:2] == (4200, 1400)
    assert _pixels_near(image, REF_RGB) > 2000 and _pixels_near(image, CUR_RGB) > 2000
    blank = np.asarray(Image.new("RGB", (1400, 4200), "white"))
    assert _pixels_near(blank, REF_RGB) == 0  # the check is not trivially true
