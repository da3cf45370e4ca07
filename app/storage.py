"""Where datasets and checkpoints live on disk: under the data dir's artifacts/.

Writes are atomic: files go to a temporary directory, are fsynced, and the directory is
renamed into place, so a crash never leaves a half-written dataset that looks whole.
Arrays are stored as .npy and always read with allow_pickle=False.
"""

import contextlib
import hashlib
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

import numpy as np

from app.errors import UploadTooLarge

# Copying in chunks of this size holds little in memory and costs few system calls.
COPY_CHUNK_BYTES: Final = 1 << 20


@dataclass(frozen=True)
class StagedFile:
    """An upload copied to disk, in a staging directory of its own, not yet in place."""

    directory: Path
    path: Path
    bytes: int
    sha256: str


class Storage:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, relative: str) -> Path:
        return self.root / relative

    @contextlib.contextmanager
    def writing(self, relative: str) -> Iterator[Path]:
        """A staging directory to fill; when the block ends, its files are fsynced and it is
        renamed to `relative` at once. On any error nothing is left behind."""
        final = self.path(relative)
        staging = final.parent / f".staging-{uuid.uuid4().hex}"
        staging.mkdir(parents=True)
        try:
            yield staging
            for written in staging.iterdir():
                _fsync(written)
            os.rename(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        _fsync_dir(final.parent)

    def write_arrays(self, relative: str, arrays: dict[str, np.ndarray]) -> None:
        with self.writing(relative) as staging:
            for name, array in arrays.items():
                np.save(staging / f"{name}.npy", array, allow_pickle=False)

    def stage_upload(
        self, source: BinaryIO, *, parent: str, filename: str, max_bytes: int
    ) -> StagedFile:
        """Copy an upload, fsynced and hashed, to `filename` in a new staging directory
        under `parent`; UploadTooLarge as soon as more than `max_bytes` arrive.

        The staging directory sits beside where `commit` renames it, on the same file
        system, so the rename is atomic. On any failure nothing is left behind.
        """
        directory = self.path(parent) / f".staging-{uuid.uuid4().hex}"
        directory.mkdir(parents=True)
        path = directory / filename
        digest, count = hashlib.sha256(), 0
        try:
            with open(path, "wb") as file:
                # One byte past the limit is enough to prove the excess.
                while chunk := source.read(min(COPY_CHUNK_BYTES, max_bytes + 1 - count)):
                    count += len(chunk)
                    if count > max_bytes:
                        raise UploadTooLarge(f"file is larger than the limit of {max_bytes} bytes")
                    digest.update(chunk)
                    file.write(chunk)
                file.flush()
                os.fsync(file.fileno())
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        return StagedFile(directory=directory, path=path, bytes=count, sha256=digest.hexdigest())

    def commit(self, staged: StagedFile, relative: str) -> None:
        """Rename a staged upload's directory to `relative`, atomically; it must not exist."""
        final = self.path(relative)
        try:
            os.rename(staged.directory, final)
        except BaseException:
            self.discard(staged)
            raise
        _fsync_dir(final.parent)

    def discard(self, staged: StagedFile) -> None:
        shutil.rmtree(staged.directory, ignore_errors=True)

    def delete(self, relative: str) -> None:
        shutil.rmtree(self.path(relative), ignore_errors=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
