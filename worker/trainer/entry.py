"""Where a trainer process starts: forked from the worker's fork server.

The fork server is a process that has already imported torch and the engine (and never
touched CUDA), so a job's trainer starts in milliseconds instead of paying Python's and
torch's start-up every time. This module itself is torch-free: the Celery process names
it as the target without importing torch.
"""

import os
import sys
from multiprocessing.connection import Connection

from app.jobs.protocol import TrainerPayload

# torch imports torch._dynamo lazily when the first optimizer is built (about a second,
# 800 modules): import it in the fork server too, so no trainer pays for it. Imports only:
# nothing here may start threads or touch CUDA before the fork.
PRELOAD = ["worker.trainer.run", "torch._dynamo"]


def child(payload: TrainerPayload, events: Connection) -> None:
    """The trainer: its own process group (so cancel kills exactly it), then the job."""
    os.setsid()
    from worker.trainer.run import train  # preloaded by the fork server: no import cost

    code = train(payload, events.send_bytes)
    events.close()
    sys.exit(code)


def ready() -> None:
    """Nothing: starting it once brings the fork server up, torch imported, before any job."""
