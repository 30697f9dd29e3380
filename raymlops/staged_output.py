"""Folders of output files that appear whole or not at all (batch predictions, retrievals).

A job writes into a hidden staging folder beside its output, checks what it wrote, and only
then publishes it. A local folder is renamed into place, so readers never see half of it.
S3 has no rename: the parts are copied to the output prefix and ``_manifest.json`` is
written last, so an output is complete exactly when its manifest exists (one without it is
what a publish killed midway left; ``overwrite`` replaces it).
"""

from __future__ import annotations

import os
import shutil
import uuid

from raymlops.exceptions import ConflictError
from raymlops.storage import Storage

__all__ = ["MANIFEST", "publish", "refuse_existing", "staging_for"]

MANIFEST = "_manifest.json"


def refuse_existing(output: Storage, overwrite: bool) -> None:
    """A typed 409-style error for an output that exists and may not be replaced."""
    if output.exists() and not overwrite:
        raise ConflictError(f"output {output.uri} exists; pass overwrite to replace it",
                            path=output.uri)


def staging_for(output: Storage) -> Storage:
    """A fresh hidden folder beside ``output`` (same filesystem, so a rename publishes it)."""
    parent, _, leaf = output.uri.rpartition("/")
    return Storage.open(f"{parent}/.{leaf}.staging-{uuid.uuid4().hex[:8]}")


def publish(staging: Storage, output: Storage, overwrite: bool) -> None:
    """Make the verified ``staging`` folder (its manifest written) the ``output``."""
    refuse_existing(output, overwrite)
    if output.is_local:
        target = output.local_path()
        if target.exists():
            trash = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(target, trash)
            os.replace(staging.local_path(), target)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(staging.local_path(), target)
        return
    output.delete_tree()
    fs = output.filesystem
    for key in staging.list():
        if key != MANIFEST:
            fs.copy_file(staging.path(key), output.path(key))
    output.write_bytes(MANIFEST, staging.read_bytes(MANIFEST))
    staging.delete_tree()
