"""Trainer processes: forked from a fork server that has imported torch, each its own
process group, ended politely and then for sure. This module never imports torch."""

import contextlib
import functools
import multiprocessing
import multiprocessing.context
import os
import signal
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from app.jobs.protocol import TrainerPayload
from worker.trainer import entry

# After SIGTERM, a trainer has this long to exit before SIGKILL.
TERMINATE_GRACE_S = 3.0


@functools.cache
def trainers() -> multiprocessing.context.ForkServerContext:
    """Trainer processes come from a fork server that has imported torch and the engine
    once, so a job starts training in milliseconds; this process never imports torch."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(entry.PRELOAD)
    return context


def warm_up() -> None:
    """Start the fork server (importing torch there) before the first job needs it."""
    process = trainers().Process(target=entry.ready)
    process.start()
    process.join()


def start(payload: TrainerPayload) -> tuple[Connection, BaseProcess]:
    """A trainer for `payload`, running; the read end of its events pipe."""
    events, trainer_end = trainers().Pipe(duplex=False)
    process = trainers().Process(target=entry.child, args=(payload, trainer_end))
    process.start()
    trainer_end.close()  # the trainer holds the only writer: its exit is our EOF
    return events, process


def _signal_group(process: BaseProcess, signum: int) -> None:
    assert process.pid is not None
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:  # not yet its own group leader, or already gone
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signum)


def stop(process: BaseProcess) -> None:
    """End the trainer's whole process group: politely, then for sure."""
    if process.exitcode is not None:
        return
    _signal_group(process, signal.SIGTERM)
    process.join(TERMINATE_GRACE_S)
    if process.exitcode is None:
        _signal_group(process, signal.SIGKILL)
        process.join()


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        name = signal.Signals(-returncode).name
        hint = " (out of memory?)" if name == "SIGKILL" else ""
        return f"the trainer was killed by {name}{hint}"
    return f"the trainer exited with code {returncode}"
