"""Which queue a worker takes jobs from: TAAS_WORKER_DEVICE, before any look at the host."""

import subprocess
import sys

import pytest
from pydantic import ValidationError

from app.config import Settings
from tests.conftest import ROOT
from worker.tasks import local_device


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_the_setting_decides_the_device_whatever_the_host_shows(device: str) -> None:
    assert local_device(Settings(worker_device=device)) == device


def test_auto_looks_at_the_host() -> None:
    assert local_device(Settings()) in {"cpu", "cuda"}


def test_an_unknown_device_is_refused_by_name() -> None:
    with pytest.raises(ValidationError, match="worker_device"):
        Settings(worker_device="tpu")


def test_a_cpu_worker_hides_gpus_from_its_trainers_and_takes_no_cuda_queue() -> None:
    # The worker's entry point, with Celery's start swapped for a print of what it would do.
    probe = (
        "import os, sys, worker.__main__ as m\n"
        "class Fake:\n"
        "    def worker_main(self, argv): print(os.environ['CUDA_VISIBLE_DEVICES'], argv)\n"
        "m.create_celery = lambda settings: Fake()\n"
        "m.main([])\n"
    )
    env = {"PATH": "/usr/bin:/bin", "TAAS_WORKER_DEVICE": "cpu", "CUDA_VISIBLE_DEVICES": "0"}
    shown = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, env=env, check=True
    ).stdout
    assert shown.startswith(" [")  # CUDA_VISIBLE_DEVICES is now empty
    assert "--queues=taas.train.auto,taas.train.cpu" in shown
    assert "cuda" not in shown
