"""The janitor: removes artifact folders that nothing will ever use.

Uploads and checkpoints are staged in `.staging-*` folders and renamed into place before
their row commits (app/storage.py), so a process killed mid-write leaves a staging folder,
and one killed between the rename and the commit leaves a whole folder no row points to.
Both are removed once older than a grace period: younger ones may still be in flight (a
slow upload, or a worker's checkpoint whose event has not been recorded yet).
"""

import logging
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.orm import Checkpoint, Dataset

logger = logging.getLogger(__name__)

STAGING_PREFIX: Final = ".staging-"
DATASETS: Final = "datasets"
CHECKPOINTS: Final = "checkpoints"
# Under checkpoints/: uploads/<id>, and <job id>/<id> for what trainers save.
CHECKPOINT_UPLOADS: Final = "uploads"


def _age_s(folder: Path, now: float) -> float:
    """Seconds since anything in `folder` (or the folder itself) last changed: a file being
    written updates its own time, not the folder's."""
    try:
        times = [folder.stat().st_mtime]
        times += [entry.stat().st_mtime for entry in folder.iterdir()]
    except OSError:  # removed meanwhile, by someone else or by the upload's own cleanup
        return 0.0
    return now - max(times)


def _artifact_folders(root: Path) -> list[Path]:
    """Every folder a dataset or checkpoint row may point to, staging folders included."""
    parents = [root / DATASETS, root / CHECKPOINTS / CHECKPOINT_UPLOADS]
    checkpoints = root / CHECKPOINTS
    if checkpoints.is_dir():
        parents += [
            job for job in checkpoints.iterdir() if job.is_dir() and job.name != CHECKPOINT_UPLOADS
        ]
    return [child for parent in parents if parent.is_dir() for child in parent.iterdir()]


def _known_paths(session: Session) -> set[str]:
    datasets = session.scalars(select(Dataset.path)).all()
    checkpoints = session.scalars(select(Checkpoint.path)).all()
    return {*datasets, *checkpoints}


def sweep(*, sessions: sessionmaker[Session], root: Path, grace_s: float) -> list[Path]:
    """Remove staging folders and folders no row points to, older than `grace_s`; what went."""
    # Folders are listed before the rows are read: a folder renamed into place and
    # committed in between is then known, never taken for an orphan.
    folders = _artifact_folders(root)
    with sessions() as session:
        known = _known_paths(session)
    now = time.time()
    removed = []
    for folder in folders:
        relative = folder.relative_to(root).as_posix()
        staging = folder.name.startswith(STAGING_PREFIX)
        if (staging or relative not in known) and _age_s(folder, now) > grace_s:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    if removed:
        logger.info("janitor removed %d leftover artifact folders", len(removed))
    return removed


@dataclass
class Janitor:
    """Sweeps at start, then every `every_s`, in a thread of the API process."""

    sessions: sessionmaker[Session]
    root: Path
    grace_s: float
    every_s: float
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="taas-janitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while True:
            try:
                sweep(sessions=self.sessions, root=self.root, grace_s=self.grace_s)
            except Exception:  # a database outage must not end the sweeps for good
                logger.exception("janitor sweep failed; retrying")
            if self._stop.wait(self.every_s):
                return
