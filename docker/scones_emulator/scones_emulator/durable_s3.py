"""LocalStack's in-memory S3 object store, reading bodies saved by persistence.py on first use."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from localstack.services.s3.models import S3Object
from localstack.services.s3.storage.ephemeral import (
    S3_MAX_FILE_SIZE_BYTES,
    EphemeralS3ObjectStore,
    EphemeralS3StoredObject,
    LockedSpooledTemporaryFile,
)


class DurableS3ObjectStore(EphemeralS3ObjectStore):
    """Ephemeral store plus lazy restore: an object loaded from its record reads its body file.

    Writes stay in memory (LocalStack's own code path); persistence.py copies new bodies to
    files before the records (or the whole snapshot) that name them, so every object a load
    puts back has its body on disk. A body file goes once its object is overwritten or deleted
    on disk; a read that still holds the old object and has not read it since the restart then
    finds no file (as a GET racing a DELETE may find no object).
    """

    def __init__(self, root_directory: str, body_path: Callable[[str, S3Object], Path]) -> None:
        super().__init__(root_directory)
        self._body_path = body_path
        self._restore_lock = threading.Lock()

    def open(
        self, bucket: str, s3_object: S3Object, mode: Literal["r", "w"] = "r"
    ) -> EphemeralS3StoredObject:
        key = self._key_from_s3_object(s3_object)
        if mode == "r" and not self._get_object_file(bucket, key):
            self._restore(bucket, key, s3_object)
        return super().open(bucket, s3_object, mode)

    def _restore(self, bucket: str, key: str, s3_object: S3Object) -> None:
        path = self._body_path(bucket, s3_object)
        if not path.exists():
            return
        with self._restore_lock:
            if self._get_object_file(bucket, key):
                return
            directory = os.path.join(self.root_directory, bucket)
            os.makedirs(directory, exist_ok=True)
            file = LockedSpooledTemporaryFile(dir=directory, max_size=S3_MAX_FILE_SIZE_BYTES)
            with open(path, "rb") as body:
                shutil.copyfileobj(body, file)
            file.seek(0)
            file.internal_last_modified = s3_object.internal_last_modified
            self._filesystem[bucket]["keys"][key] = file
