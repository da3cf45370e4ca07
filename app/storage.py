"""Where datasets (and later checkpoints) live on disk: under the data dir's artifacts/.

Writes are atomic: files go to a temporary directory, are fsynced, and the directory is
renamed into place, so a crash never leaves a half-written dataset that looks whole.
Arrays are stored as .npy and always read with allow_pickle=False.
"""

import contextlib
import os
import shutil
import uuid
from pathlib import Path

import numpy as np


class Storage:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, relative: str) -> Path:
        return self.root / relative

    def write_arrays(self, relative: str, arrays: dict[str, np.ndarray]) -> None:
        final = self.path(relative)
        staging = final.parent / f".staging-{uuid.uuid4().hex}"
        staging.mkdir(parents=True)
        try:
            for name, array in arrays.items():
                with open(staging / f"{name}.npy", "wb") as file:
                    np.save(file, array, allow_pickle=False)
                    file.flush()
                    os.fsync(file.fileno())
            os.rename(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        _fsync_dir(final.parent)

    def delete(self, relative: str) -> None:
        shutil.rmtree(self.path(relative), ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
