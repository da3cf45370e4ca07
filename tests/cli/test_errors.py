"""Every `taas` failure is a sentence or two and exit 1; --debug shows the traceback."""

import json
import socket
from pathlib import Path

from tests.cli.conftest import Taas
from tests.conftest import ADMIN_TOKEN, free_port


def closed_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


def test_a_command_against_a_closed_port_prints_at_most_3_lines_naming_the_url(
    taas: Taas,
) -> None:
    url = closed_url()

    run = taas("status", "job_x", "--url", url)

    assert run.returncode == 1
    output = (run.stdout + run.stderr).strip().splitlines()
    assert 1 <= len(output) <= 3, output
    assert url in output[0] and "taas up" in output[0]
    assert "Traceback" not in run.stderr


def test_debug_shows_the_traceback(taas: Taas) -> None:
    run = taas("--debug", "status", "job_x", "--url", closed_url())

    assert run.returncode == 1
    assert "Traceback" in run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith("error: cannot reach")


def test_a_missing_spec_file_is_one_line(taas: Taas, tmp_path: Path) -> None:
    run = taas("submit", str(tmp_path / "nope.json"), "--url", closed_url())

    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [f"error: {tmp_path / 'nope.json'}: no such file"]


def test_a_spec_that_is_not_json_names_the_line_and_column(taas: Taas, tmp_path: Path) -> None:
    spec = tmp_path / "job.json"
    spec.write_text('{\n  "dataset": "synthetic",\n  "model": {,}\n}\n')

    run = taas("submit", str(spec), "--url", closed_url())

    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "line 3, column 13" in lines[0] and str(spec) in lines[0]


def test_a_4xx_shows_its_message_and_every_detail(taas: Taas, api_url: str, tmp_path: Path) -> None:
    spec = tmp_path / "job.json"
    bad = {
        "dataset": "synthetic",
        "model": {"layers": [{"type": "flatten"}, {"type": "linear", "out_features": 12}]},
        "optimizer": {"name": "sgd", "lr": 0.1},
        "training": {"epochs": 1, "batch_size": 32},
    }
    spec.write_text(json.dumps(bad))

    run = taas("submit", str(spec), "--url", api_url, "--token", ADMIN_TOKEN)

    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("error: 422 invalid_spec: ")
    assert "model.layers[1].out_features" in lines[1]


def test_no_key_is_a_401_that_says_how_to_log_in(taas: Taas, api_url: str) -> None:
    run = taas("status", "job_x", "--url", api_url)

    assert run.returncode == 1
    assert "401" in run.stderr and "taas login" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 2


def test_a_missing_upload_file_is_one_line(taas: Taas, tmp_path: Path) -> None:
    run = taas("datasets", "upload", str(tmp_path / "x.npz"), "--url", closed_url())

    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [f"error: {tmp_path / 'x.npz'}: no such file (FILE)"]


def test_the_port_check_refuses_a_port_in_use(taas: Taas) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]

        run = taas("api", "--port", str(port))

    assert run.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in run.stderr
