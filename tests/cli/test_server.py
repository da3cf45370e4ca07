"""`taas up` refuses a busy port at once and gives up loudly on a crash loop."""

import socket
import sys
from pathlib import Path

from app.cli import server
from tests.cli.conftest import Taas


def test_up_on_a_busy_port_fails_before_saying_up(taas: Taas, tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]

        run = taas("up", "--port", str(port), "--data-dir", str(tmp_path / "data"))

    assert run.returncode == 1
    assert "is up" not in run.stdout
    assert run.stderr.strip().splitlines() == [
        f"error: port {port} on 127.0.0.1 is already in use (another `taas up`?): stop what"
        f" holds it, or pick another port: --port 8001 (make run PORT=8001)"
    ]
    assert not (tmp_path / "data").exists()  # refused before anything was made


def test_a_child_that_keeps_dying_is_not_restarted_for_ever() -> None:
    child = server.Child("worker", [sys.executable, "-c", "raise SystemExit(3)"], {})
    restarts = 0
    while True:
        child.process.wait(30)
        assert child.exit_text() == "exited with code 3"
        if not child.restart():
            break
        restarts += 1

    assert restarts == server.MAX_CRASHES - 1


def test_a_child_killed_by_a_signal_says_which() -> None:
    child = server.Child("API", [sys.executable, "-c", "import time; time.sleep(60)"], {})
    child.process.kill()
    child.process.wait(30)

    assert child.exit_text() == "was killed by SIGKILL"
    child.stop()
