"""A real sweep end to end: real worker processes train every trial, the sweep advances
as trials end, a promoted trial resumes from its checkpoint, the stream follows it all."""

from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from tests.client import small_job
from tests.conftest import Workers

pytestmark = pytest.mark.usefixtures("backend")
LRS = [0.2, 0.05, 0.001]


def follow(client: TestClient, sweep_id: str) -> tuple[list[dict[str, Any]], int]:
    """Every message of the sweep's stream until the server closes it, and the code."""
    messages: list[dict[str, Any]] = []
    with client.websocket_connect(f"/v1/sweeps/{sweep_id}/stream") as socket:
        try:
            while True:
                messages.append(socket.receive_json())
        except WebSocketDisconnect as closed:
            return messages, closed.code


def test_a_halving_sweep_runs_on_a_worker_promotes_by_resuming_and_ends(
    client: TestClient, workers: Workers
) -> None:
    body = {
        "name": "lr",
        "base": small_job(epochs=3),
        "space": {"optimizer.lr": LRS},
        "strategy": {"name": "halving", "eta": 3, "min_epochs": 1},
        "objective": {"maximize": "val_accuracy"},
        "budget": {"max_trials": 3, "max_parallel": 2},
    }
    # The sweep exists before any worker: it is rows in the database, nothing else.
    created = client.post("/v1/sweeps", json=body)
    assert created.status_code == 201, created.text
    sweep_id = created.json()["id"]
    workers.start()

    messages, code = follow(client, sweep_id)

    assert code == 1000
    assert {m["type"] for m in messages} == {"sweep"}
    assert messages[-1]["data"]["status"] == "succeeded"
    done = client.get(f"/v1/sweeps/{sweep_id}").json()
    assert done == messages[-1]["data"]
    assert done["rungs"] == [1, 3]
    states = sorted(t["state"] for t in done["trials"])
    assert states == ["done", "stopped", "stopped"]
    winner = next(t for t in done["trials"] if t["state"] == "done")
    assert done["leaderboard"][0] == winner["position"]
    assert winner["epochs"] == 3 and len(winner["jobs"]) == 2
    first, second = (client.get(f"/v1/jobs/{j}").json() for j in winner["jobs"])
    assert first["status"] == second["status"] == "succeeded"
    # The promoted rung continued the first rung's job from its checkpoint: it trained
    # epochs 2 and 3 only.
    assert second["spec"]["init"]["resume"] is True
    saved = client.get(f"/v1/jobs/{first['id']}/checkpoints").json()["items"]
    assert second["spec"]["init"]["checkpoint"] in {c["id"] for c in saved}
    metrics = client.get(f"/v1/jobs/{second['id']}/metrics").json()["items"]
    assert sorted({m["data"]["epoch"] for m in metrics if m["data"].get("scope") == "epoch"}) == [
        2,
        3,
    ]
    assert done["best"]["spec"]["training"]["epochs"] == 3
    assert done["best"]["spec"]["optimizer"]["lr"] == winner["config"]["optimizer.lr"]
    assert done["summary"] and done["summary"][0].startswith("optimizer.lr: ")
    # Every trial job carries the sweep's tag.
    tagged = client.get("/v1/jobs", params={"tag": f"sweep:{sweep_id}"}).json()["items"]
    assert len(tagged) == 4
