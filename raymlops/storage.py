"""Where the platform's files live: one URI every node of the cluster can reach.

The storage root is a local folder (the embedded default), ``file:///...``, or
``s3://bucket/prefix`` on any S3-compatible store. Code that may run on another node than the
one that wrote a file (Ray tasks, scoring actors, Tune trials, a restarted platform actor on a
new host) reads and writes through :class:`Storage`, never through ``pathlib`` on the head's
folder: on a cluster each node has its own disk, and a head path read on a worker is simply
missing (or, worse, silently empty).

S3 is configured the way every AWS tool is, with no names of ours: ``AWS_ENDPOINT_URL``
(``http://`` or ``https://``; absent on AWS itself), ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN`` (absent: the instance profile) and
``AWS_REGION`` / ``AWS_DEFAULT_REGION``.

Two write primitives carry the platform's durability guarantees on both backends:

- :meth:`Storage.write_bytes` replaces a file atomically (a reader sees the old or the new
  bytes, never a torn file): a temporary file plus ``rename`` on a local disk, one ``PUT`` on
  S3 (an object appears whole);
- :meth:`Storage.create` writes a file only if none exists, and says whether it did: a hard
  link on a local disk, a conditional ``PUT`` (``If-None-Match: *``) on S3. It is how a
  result is published exactly once when two writers race (S3 has no directory rename).
"""

from __future__ import annotations

import os
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlparse

import pyarrow.fs as pafs

from raymlops.exceptions import ConfigError

__all__ = ["Storage", "filesystem_of", "is_remote_uri", "normalize_uri", "s3_client"]

_SCHEMES = ("s3",)


def is_remote_uri(uri: str) -> bool:
    """Whether ``uri`` names an object store rather than a local folder."""
    return urlparse(str(uri)).scheme in _SCHEMES


def normalize_uri(value: str | os.PathLike[str]) -> str:
    """An absolute local path, or ``s3://bucket/prefix`` without a trailing slash.

    ``file:///a/b`` and ``~/a`` become ``/a/b`` and the expanded home; any other scheme is a
    :class:`ConfigError` naming ``storage_root``."""
    text = os.fspath(value).strip()
    parsed = urlparse(text)
    if parsed.scheme in ("", "file"):
        path = parsed.path if parsed.scheme == "file" else text
        if parsed.scheme == "file" and parsed.netloc not in ("", "localhost"):
            raise ConfigError(f"storage root {text!r}: a file:// URI names no host "
                              "(file:///absolute/path)", field="storage_root")
        return str(Path(path).expanduser().resolve())
    if parsed.scheme in _SCHEMES:
        if not parsed.netloc:
            raise ConfigError(f"storage root {text!r} names no bucket (s3://bucket/prefix)",
                              field="storage_root")
        prefix = parsed.path.strip("/")
        return f"s3://{parsed.netloc}/{prefix}".rstrip("/")
    raise ConfigError(f"storage root {text!r}: unsupported scheme {parsed.scheme!r} "
                      "(a local path, file:// or s3://)", field="storage_root")


def _aws_endpoint() -> tuple[str | None, str]:
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        return None, "https"
    parsed = urlparse(endpoint)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(f"AWS_ENDPOINT_URL {endpoint!r} must be http(s)://host[:port]",
                          field="AWS_ENDPOINT_URL")
    return parsed.netloc, parsed.scheme


def _region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


_FS_LOCK = threading.Lock()
_FILESYSTEMS: dict[tuple[Any, ...], pafs.FileSystem] = {}


def _s3_filesystem() -> pafs.FileSystem:
    """pyarrow's S3 client for the current AWS environment (one per distinct environment)."""
    endpoint, scheme = _aws_endpoint()
    key = (endpoint, scheme, _region(), os.environ.get("AWS_ACCESS_KEY_ID"),
           os.environ.get("AWS_SECRET_ACCESS_KEY"), os.environ.get("AWS_SESSION_TOKEN"))
    with _FS_LOCK:
        fs = _FILESYSTEMS.get(key)
        if fs is None:
            options: dict[str, Any] = {"region": _region(), "scheme": scheme}
            if endpoint:
                options["endpoint_override"] = endpoint
            if key[3] and key[4]:
                options.update(access_key=key[3], secret_key=key[4], session_token=key[5])
            fs = _FILESYSTEMS[key] = pafs.S3FileSystem(**options)
        return fs


def s3_client() -> Any:
    """A boto3 S3 client for the same environment (for what pyarrow lacks: conditional puts)."""
    import boto3  # only S3 roots need it

    endpoint, scheme = _aws_endpoint()
    return boto3.client("s3", region_name=_region(),
                        endpoint_url=f"{scheme}://{endpoint}" if endpoint else None)


def filesystem_of(uri: str | os.PathLike[str]) -> tuple[pafs.FileSystem, str]:
    """The filesystem and its path for one file or folder named by a local path or URI."""
    normal = normalize_uri(uri)
    if is_remote_uri(normal):
        return _s3_filesystem(), normal[len("s3://"):]
    return pafs.LocalFileSystem(), normal


@dataclass(frozen=True)
class Storage:
    """A folder (local or in a bucket) addressed by keys: ``"offline/flights/v1/x.parquet"``.

    Pickles as its URI, so a task on another node rebuilds the client from that node's own
    AWS environment (its instance profile on a real cluster) rather than carrying secrets."""

    uri: str

    @classmethod
    def open(cls, uri: str | os.PathLike[str]) -> Storage:
        return cls(normalize_uri(uri))

    # -- addressing ------------------------------------------------------------------------

    @property
    def is_local(self) -> bool:
        return not is_remote_uri(self.uri)

    @property
    def filesystem(self) -> pafs.FileSystem:
        """The pyarrow filesystem (pass it with :meth:`path` to Ray Data, Tune or pyarrow)."""
        return pafs.LocalFileSystem() if self.is_local else _s3_filesystem()

    @property
    def base(self) -> str:
        """This folder as a path of :attr:`filesystem` (``bucket/prefix`` on S3)."""
        return self.uri if self.is_local else self.uri[len("s3://"):]

    def path(self, *keys: str) -> str:
        """A key as a path of :attr:`filesystem`."""
        return "/".join([self.base.rstrip("/"), *(_clean(k) for k in keys if k)])

    def uri_of(self, *keys: str) -> str:
        """A key as a URI (a plain path when local), e.g. for MLflow's artifact location."""
        return self.path(*keys) if self.is_local else "s3://" + self.path(*keys)

    def child(self, *keys: str) -> Storage:
        return Storage(self.uri_of(*keys))

    def local_path(self, *keys: str) -> Path:
        """The local path of a key; only for local roots (a typed error otherwise)."""
        if not self.is_local:
            raise ConfigError(f"{self.uri} is not a local folder", field="storage_root")
        return Path(self.path(*keys))

    # -- reading ---------------------------------------------------------------------------

    def exists(self, key: str = "") -> bool:
        info = self.filesystem.get_file_info(self.path(key))
        return info.type != pafs.FileType.NotFound

    def is_file(self, key: str) -> bool:
        return self.filesystem.get_file_info(self.path(key)).type == pafs.FileType.File

    def read_bytes(self, key: str) -> bytes:
        """The file's bytes; ``FileNotFoundError`` when there is none."""
        try:
            with self.filesystem.open_input_stream(self.path(key)) as stream:
                return stream.read()
        except (FileNotFoundError, OSError) as exc:
            if not self.is_file(key):
                raise FileNotFoundError(self.uri_of(key)) from exc
            raise

    def read_text(self, key: str) -> str:
        return self.read_bytes(key).decode()

    def list(self, prefix: str = "", *, suffix: str | tuple[str, ...] = "") -> list[str]:
        """Keys of the files under ``prefix`` (recursive, sorted), relative to this folder.

        Names starting with ``.`` or ``_`` (temporary files, markers) are left out, as
        pyarrow's datasets do."""
        selector = pafs.FileSelector(self.path(prefix), recursive=True, allow_not_found=True)
        base = self.path().rstrip("/") + "/"
        keys = []
        for info in self.filesystem.get_file_info(selector):
            if info.type != pafs.FileType.File:
                continue
            key = info.path[len(base):] if info.path.startswith(base) else info.path
            if any(part.startswith((".", "_")) for part in key.split("/")):
                continue
            if suffix and not key.endswith(suffix):
                continue
            keys.append(key)
        return sorted(keys)

    def open_input(self, key: str) -> BinaryIO:
        """A seekable file (what pyarrow's Parquet reader wants)."""
        return self.filesystem.open_input_file(self.path(key))  # type: ignore[return-value]

    # -- writing ---------------------------------------------------------------------------

    def write_bytes(self, key: str, data: bytes) -> None:
        """Replace (or create) the file atomically, durable once this returns."""
        if self.is_local:
            target = self.local_path(key)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
            _write_synced(tmp, data)
            os.replace(tmp, target)
            _sync_dir(target.parent)
            return
        with self.filesystem.open_output_stream(self.path(key)) as out:
            out.write(data)

    def write_text(self, key: str, text: str) -> None:
        self.write_bytes(key, text.encode())

    def create(self, key: str, data: bytes) -> bool:
        """Write the file only if none exists; ``False`` (nothing written) if one does.

        Atomic against concurrent writers on both backends: of two racing ``create`` calls
        exactly one returns ``True``."""
        if self.is_local:
            target = self.local_path(key)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
            _write_synced(tmp, data)
            try:
                os.link(tmp, target)
            except FileExistsError:
                return False
            finally:
                tmp.unlink(missing_ok=True)
            _sync_dir(target.parent)
            return True
        from botocore.exceptions import ClientError

        bucket, _, object_key = self.path(key).partition("/")
        try:
            s3_client().put_object(Bucket=bucket, Key=object_key, Body=data, IfNoneMatch="*")
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412):
                return False
            raise
        return True

    def open_output(self, key: str) -> BinaryIO:
        """A stream that writes the file (whole on S3 only once closed; not atomic locally:
        use it for files named uniquely by their writer)."""
        if self.is_local:
            self.local_path(key).parent.mkdir(parents=True, exist_ok=True)
        return self.filesystem.open_output_stream(self.path(key))  # type: ignore[return-value]

    def delete(self, key: str) -> None:
        """Remove one file (nothing if it is gone already)."""
        try:
            self.filesystem.delete_file(self.path(key))
        except FileNotFoundError:
            pass
        except OSError:
            if self.is_file(key):
                raise

    def delete_tree(self, prefix: str = "") -> None:
        """Remove a folder and everything in it (nothing if it does not exist)."""
        path = self.path(prefix)
        if self.filesystem.get_file_info(path).type == pafs.FileType.NotFound:
            if self.is_local:
                return
            # S3 has no folders: a prefix exists only through its objects.
            if not self.filesystem.get_file_info(pafs.FileSelector(path, allow_not_found=True)):
                return
        self.filesystem.delete_dir(path)

    def ensure_folder(self, prefix: str = "") -> None:
        """Make the folder (local roots; S3 needs none). Fails with a clear error when the
        bucket does not exist."""
        if self.is_local:
            self.local_path(prefix).mkdir(parents=True, exist_ok=True)
            return
        bucket = self.base.split("/", 1)[0]
        if self.filesystem.get_file_info(bucket).type == pafs.FileType.NotFound:
            raise ConfigError(f"bucket {bucket!r} of storage root {self.uri} does not exist "
                              "(or these credentials cannot see it)", field="storage_root")


def _clean(key: str) -> str:
    parts = [p for p in key.strip("/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"storage key {key!r} leaves its folder")
    return "/".join(parts)


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def _sync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
