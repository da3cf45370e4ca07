"""The worker parses a job's spec once per attempt (the claim does); the payload carries the
parsed JobSpec across the fork and into the trainer, which never parses it again."""

import json
import pickle
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.broker import Dispatcher
from app.config import Settings
from app.db import make_engine, make_session_factory
from app.events.notify import NoNotifier
from app.jobs import transitions
from app.spec import JobSpec
from app.storage import Storage
from tests.client import small_job
from worker.supervisor import Supervisor
from worker.trainer.run import train


class CountingValidator:
    """JobSpec's pydantic validator, counting every time something validates a JobSpec."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls = 0

    def validate_python(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.inner.validate_python(*args, **kwargs)

    def validate_json(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.inner.validate_json(*args, **kwargs)

    def validate_strings(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.inner.validate_strings(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_an_attempt_parses_the_spec_once_and_the_trainer_never(
    client: TestClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = client.post("/v1/jobs", json=small_job(epochs=2)).json()
    engine = make_engine(settings)
    sessions = make_session_factory(engine)
    supervisor = Supervisor(
        settings, sessions, NoNotifier(), Storage(settings.artifacts_dir), "w", Dispatcher(settings)
    )
    # Counting starts after the submit: the API parses the client's body, as it must.
    counting = CountingValidator(JobSpec.__pydantic_validator__)
    monkeypatch.setattr(JobSpec, "__pydantic_validator__", counting)

    with sessions() as session:
        claim = transitions.claim(
            session=session, notifier=NoNotifier(), job_id=job["id"], worker="w", lease_ttl_s=30
        )
    assert claim is not None
    payload = supervisor.payload(claim)
    outcome = supervisor.supervise(claim)  # a real trainer, forked from the fork server
    supervisor.record_end(claim, outcome)
    after_supervisor = counting.calls

    # The trainer's side, traced here: the payload as it arrives across the fork (pickled,
    # as multiprocessing sends it), trained in this process.
    sent: list[dict[str, Any]] = []
    code = train(pickle.loads(pickle.dumps(payload)), lambda line: sent.append(json.loads(line)))
    engine.dispose()

    assert outcome.error is None and outcome.result is not None
    assert client.get(f"/v1/jobs/{job['id']}").json()["status"] == "succeeded"
    assert after_supervisor == 1  # the claim's, once for the attempt
    assert code == 0 and sent[-1]["type"] == "result"
    assert counting.calls == 1  # the trainer parsed nothing
