"""The storage contract: the same suite on a local folder and on a real S3 store (SeaweedFS)."""

from __future__ import annotations

import pickle
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from raymlops.config import load_settings
from raymlops.exceptions import ConfigError
from raymlops.storage import normalize_uri


def test_write_then_read_gives_the_bytes_back_and_a_second_write_replaces_them(storage):
    storage.write_bytes("a/b/file.bin", b"one")
    assert storage.read_bytes("a/b/file.bin") == b"one"
    storage.write_text("a/b/file.bin", "two")
    assert storage.read_text("a/b/file.bin") == "two"
    assert storage.is_file("a/b/file.bin") and storage.exists("a") and storage.exists("a/b")


def test_a_missing_file_is_file_not_found_naming_its_uri(storage):
    with pytest.raises(FileNotFoundError, match="nothing/here"):
        storage.read_bytes("nothing/here")
    assert not storage.exists("nothing")


def test_list_is_recursive_sorted_relative_and_hides_temporary_and_marker_files(storage):
    for key in ["v/date=2013-02-01/p.parquet", "v/date=2013-01-01/p.parquet", "v/_SUCCESS",
                "v/.tmp-file", "v/_staging/x.parquet", "w/other.csv"]:
        storage.write_bytes(key, b"x")
    assert storage.list("v") == ["v/date=2013-01-01/p.parquet", "v/date=2013-02-01/p.parquet"]
    assert storage.list(suffix=".csv") == ["w/other.csv"]
    assert storage.list("missing") == []
    assert storage.child("v").list() == ["date=2013-01-01/p.parquet", "date=2013-02-01/p.parquet"]


def test_create_writes_only_when_absent_and_exactly_one_of_racing_writers_wins(storage):
    assert storage.create("marker.json", b"first")
    assert not storage.create("marker.json", b"second")
    assert storage.read_bytes("marker.json") == b"first"

    results: list[bool] = []
    lock = threading.Lock()

    def race(i: int) -> None:
        won = storage.create("race.json", str(i).encode())
        with lock:
            results.append(won)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]
    assert storage.read_bytes("race.json") in {str(i).encode() for i in range(8)}


def test_delete_and_delete_tree_remove_and_tolerate_what_is_gone(storage):
    storage.write_bytes("t/a", b"1")
    storage.write_bytes("t/sub/b", b"2")
    storage.write_bytes("keep", b"3")
    storage.delete("t/a")
    storage.delete("t/a")
    assert storage.list("t") == ["t/sub/b"]
    storage.delete_tree("t")
    storage.delete_tree("t")
    assert storage.list() == ["keep"]


def test_keys_cannot_leave_the_folder(storage):
    with pytest.raises(ValueError, match="leaves"):
        storage.write_bytes("../escape", b"x")


def test_a_pickled_storage_works_where_it_lands(storage):
    storage.write_bytes("p", b"pickled")
    copy = pickle.loads(pickle.dumps(storage))  # noqa: S301 - our own bytes, just made
    assert copy == storage and copy.read_bytes("p") == b"pickled"


def test_pyarrow_datasets_read_and_write_through_its_filesystem(storage):
    table = pa.table({"x": [1, 2, 3], "day": ["a", "b", "a"]})
    with storage.open_output("tables/part-0.parquet") as out:
        pq.write_table(table, out)
    dataset = pads.dataset(storage.path("tables"), filesystem=storage.filesystem, format="parquet")
    assert dataset.to_table().column("x").to_pylist() == [1, 2, 3]
    with storage.open_input("tables/part-0.parquet") as source:
        assert pq.read_table(source).num_rows == 3


def test_uri_of_names_the_same_place_for_other_tools(storage):
    uri = storage.uri_of("mlartifacts", "exp")
    assert uri.endswith("/mlartifacts/exp")
    assert uri.startswith("s3://contract/") if not storage.is_local else uri.startswith("/")


def test_uris_are_normalized_and_bad_ones_name_the_setting(tmp_path: Path):
    assert normalize_uri(f"file://{tmp_path}/x/") == str(tmp_path / "x")
    assert normalize_uri("s3://bucket/a/b/") == "s3://bucket/a/b"
    assert normalize_uri("s3://bucket") == "s3://bucket"
    for bad in ["s3:///nobucket", "gs://bucket/x", "file://host/x"]:
        with pytest.raises(ConfigError) as info:
            normalize_uri(bad)
        assert info.value.context.get("field") == "storage_root"


def test_settings_on_an_s3_root_keep_machine_state_local_and_artifacts_in_the_bucket(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("HOME", str(tmp_path))
    settings = load_settings(storage_root="s3://bucket/platform")
    assert settings.storage_root == "s3://bucket/platform"
    assert settings.artifact_location == "s3://bucket/platform/mlartifacts"
    assert settings.local_dir.is_relative_to(tmp_path / ".raymlops")
    assert settings.tracking_uri == f"sqlite:///{settings.local_dir / 'mlflow.db'}"
    assert settings.state_dir == settings.local_dir / "run"

    local = load_settings(storage_root=tmp_path / "r")
    assert local.storage_root == str(tmp_path / "r") and local.local_dir == tmp_path / "r"
    assert local.artifact_location == str(tmp_path / "r" / "mlartifacts")
    with pytest.raises(ConfigError, match="storage_root"):
        load_settings(storage_root="ftp://x/y")


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def test_label_folders_read_the_same_from_either_backend(storage):
    from raymlops.training.labels import _read_files

    for month, rows in (("2013-01", [1, 2]), ("2013-02", [3])):
        storage.write_bytes(f"labels/month={month}/part.parquet",
                            _parquet_bytes(pa.table({"y": rows})))
    storage.write_bytes("labels/_SUCCESS", b"")
    frame = _read_files(storage.uri_of("labels")).sort_values("y")
    assert frame["y"].tolist() == [1, 2, 3]
    assert frame["month"].astype(str).tolist() == ["2013-01", "2013-01", "2013-02"]
    storage.write_text("one.csv", "y\n7\n")
    assert _read_files(storage.uri_of("one.csv"))["y"].tolist() == [7]


def test_drift_inputs_and_reports_go_through_the_same_uris(storage):
    from raymlops.monitoring.drift import _Source
    from raymlops.monitoring.drift_publish import write_report

    storage.write_bytes("cur/date=2013-01-01/a.parquet", _parquet_bytes(pa.table({"x": [1.0]})))
    source = _Source.open(storage.uri_of("cur"))
    assert source.available == ["x", "date"] and len(source.fragments()) == 1
    write_report(storage.uri_of("reports/drift.html"), "<html>ok</html>")
    assert storage.read_text("reports/drift.html") == "<html>ok</html>"
