"""The sweep rules on real databases: halving's rungs, max_parallel, and an advance that
is idempotent and driven only by the rows (so a restart loses nothing).

Trial jobs end here through the job service itself (claim, a checkpoint, finish) with
the metrics a trainer would report, so the rung logic is tested without training."""

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from app.broker import Dispatcher
from app.config import Settings
from app.db import make_engine, make_session_factory
from app.events.notify import NoNotifier
from app.events.schemas import NewEvent
from app.ids import new_id
from app.jobs import service as jobs
from app.jobs import transitions
from app.orm import Checkpoint, Job, Sweep, Trial
from app.orm.base import utcnow
from app.spec.sweeps import SweepSpec
from app.sweeps import advance as advancing
from app.sweeps import lifecycle
from tests.client import small_job

pytestmark = pytest.mark.usefixtures("backend")
NOTIFIER = NoNotifier()
TENANT = "alpha"
LRS = [0.01, 0.02, 0.03, 0.04, 0.05, 0.06]
# The small job's net: linear 16 -> 32 -> 4.
TENSORS = {
    "0.weight": {"dtype": "F32", "shape": [32, 16]},
    "0.bias": {"dtype": "F32", "shape": [32]},
    "1.weight": {"dtype": "F32", "shape": [4, 32]},
    "1.bias": {"dtype": "F32", "shape": [4]},
}


@pytest.fixture
def sessions(settings: Settings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(settings)
    yield make_session_factory(engine)
    engine.dispose()


def services(settings: Settings) -> dict[str, Any]:
    return {"dispatcher": Dispatcher(settings), "notifier": NOTIFIER, "limits": settings}


def create(settings: Settings, sessions: sessionmaker[Session], **fields: Any) -> str:
    body: dict[str, Any] = {
        "base": small_job(epochs=9),
        "space": {"optimizer.lr": LRS},
        "strategy": {"name": "halving", "eta": 3, "min_epochs": 1},
        "objective": {"maximize": "val_accuracy"},
        "budget": {"max_trials": 6, "max_parallel": 6},
        **fields,
    }
    with sessions() as session:
        sweep = lifecycle.create(
            session=session,
            tenant=TENANT,
            spec=SweepSpec.model_validate(body),
            **services(settings),
        )
    return sweep.id


def advance(settings: Settings, sessions: sessionmaker[Session], sweep_id: str) -> None:
    with sessions() as session:
        advancing.advance(session=session, sweep_id=sweep_id, **services(settings))


def trials(sessions: sessionmaker[Session], sweep_id: str) -> list[Trial]:
    with sessions() as session:
        sweep = session.get(Sweep, sweep_id)
        assert sweep is not None
        return list(sweep.trials)


def sweep_row(sessions: sessionmaker[Session], sweep_id: str) -> Sweep:
    with sessions() as session:
        sweep = session.get(Sweep, sweep_id)
        assert sweep is not None
        return sweep


def end_rung(
    sessions: sessionmaker[Session], job_id: str, accuracy: float, target_s: float | None = None
) -> None:
    """The job runs to its end as a trainer would: a final checkpoint, then its result."""
    with sessions() as session:
        claim = transitions.claim(
            session=session, notifier=NOTIFIER, job_id=job_id, worker="w", lease_ttl_s=30
        )
        assert claim is not None
        epochs = claim.spec.training.epochs
        init = claim.spec.init
        resumed = session.get(Checkpoint, init.checkpoint) if init else None
        ran = epochs - (resumed.epoch or 0 if resumed else 0)
        metrics = {"epoch": epochs, "val_accuracy": accuracy, "val_loss": 1 - accuracy}
        saved = {
            "id": new_id("ckpt"),
            "kind": "final",
            "epoch": epochs,
            "step": epochs * 10,
            "metrics": metrics,
            "tensors": TENSORS,
            "bytes": 1,
            "sha256": "0" * 64,
            "path": f"checkpoints/{job_id}/final",
            "state_sha256": "1" * 64,
        }
        transitions.record(
            session=session,
            notifier=NOTIFIER,
            claim=claim,
            new=[NewEvent(type="checkpoint", data=saved)],
        )
        transitions.finish(
            session=session,
            notifier=NOTIFIER,
            claim=claim,
            status="succeeded",
            reason="target_reached" if target_s is not None else "completed",
            result={
                "final": metrics,
                "best": metrics,
                "epochs": epochs,
                "stopped": "target_reached" if target_s is not None else "completed",
            },
            timings={
                "epoch_s": [1.0] * ran,
                "train_s": 0.8 * ran,
                "eval_s": 0.2 * ran,
                "checkpoint_s": 0.0,
                "time_to_target_s": target_s,
            },
        )


def job(sessions: sessionmaker[Session], job_id: str | None) -> Job:
    with sessions() as session:
        row = session.get(Job, job_id)
        assert row is not None
        return row


def test_halving_promotes_the_best_third_as_rungs_end_and_stops_the_rest(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    sweep_id = create(settings, sessions)
    accuracy = [0.5, 0.9, 0.6, 0.7, 0.8, 0.4]
    started = trials(sessions, sweep_id)
    assert [t.state for t in started] == ["running"] * 6
    assert {job(sessions, t.job_id).spec["training"]["epochs"] for t in started} == {1}

    for trial in started[:3]:
        end_rung(sessions, trial.job_id or "", accuracy[trial.position])
    advance(settings, sessions, sweep_id)

    # ASHA: of the three that finished rung 0, the best third (trial 1) goes on at once.
    now = trials(sessions, sweep_id)
    assert [(t.state, t.rung) for t in now[:3]] == [("waiting", 0), ("running", 1), ("waiting", 0)]
    promoted = job(sessions, now[1].job_id)
    first_rung = job(sessions, now[1].job_ids[0])
    assert promoted.spec["training"]["epochs"] == 3
    assert promoted.spec["init"]["resume"] is True
    assert promoted.warm_start is not None
    with sessions() as session:
        newest = jobs.checkpoints.newest_of_job(session, first_rung.id)
        assert newest is not None and promoted.spec["init"]["checkpoint"] == newest.id

    for trial in started[3:]:
        end_rung(sessions, trial.job_id or "", accuracy[trial.position])
    advance(settings, sessions, sweep_id)

    # Rung 0 is closed: the best 6 // 3 = 2 (trials 1 and 4) go on, the rest stop.
    now = trials(sessions, sweep_id)
    assert [t.state for t in now] == [
        "stopped",
        "running",
        "stopped",
        "stopped",
        "running",
        "stopped",
    ]
    assert now[3].reason == "rank 3 of 6 at rung 0"

    end_rung(sessions, now[1].job_id or "", 0.95)
    end_rung(sessions, now[4].job_id or "", 0.85)
    advance(settings, sessions, sweep_id)

    now = trials(sessions, sweep_id)
    assert [(t.state, t.rung) for t in (now[1], now[4])] == [("running", 2), ("stopped", 1)]
    assert job(sessions, now[1].job_id).spec["training"]["epochs"] == 9

    end_rung(sessions, now[1].job_id or "", 0.97)
    advance(settings, sessions, sweep_id)

    ended = sweep_row(sessions, sweep_id)
    assert (ended.status, ended.reason) == ("succeeded", "completed")
    with sessions() as session:
        view = lifecycle.describe(session=session, sweep=sweep_row(sessions, sweep_id))
    assert view.leaderboard[:2] == [1, 4]
    assert view.best is not None and view.best.config == {"optimizer.lr": LRS[1]}
    assert view.best.spec["optimizer"]["lr"] == LRS[1]
    assert view.best.spec["training"]["epochs"] == 9
    assert "init" not in view.best.spec
    # Halving trained 6 x 1 + 2 x 2 + 1 x 6 = 16 epochs, a grid would have trained 54.
    assert view.compute_s == pytest.approx(16.0)


def test_no_more_than_max_parallel_trials_are_open(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    sweep_id = create(settings, sessions, strategy={"name": "grid"}, budget={"max_parallel": 2})
    assert [t.state for t in trials(sessions, sweep_id)] == ["running"] * 2 + ["pending"] * 4

    end_rung(sessions, trials(sessions, sweep_id)[0].job_id or "", 0.5)
    advance(settings, sessions, sweep_id)

    states = [t.state for t in trials(sessions, sweep_id)]
    assert states == ["done", "running", "running", "pending", "pending", "pending"]


def test_advance_is_idempotent_and_a_lost_write_is_found_again_by_its_key(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    sweep_id = create(settings, sessions, strategy={"name": "grid"}, budget={"max_parallel": 2})
    before = trials(sessions, sweep_id)

    advance(settings, sessions, sweep_id)
    advance(settings, sessions, sweep_id)

    with sessions() as session:
        assert session.query(Job).count() == 2
        # A crash after the job was submitted but before the trial recorded it: the trial
        # still reads pending, and the next advance finds the same job by its key.
        session.execute(
            update(Trial)
            .where(Trial.sweep_id == sweep_id, Trial.position == 1)
            .values(state="pending", job_id=None, job_ids=[])
        )
        session.commit()
    advance(settings, sessions, sweep_id)

    after = trials(sessions, sweep_id)
    assert after[1].job_id == before[1].job_id
    with sessions() as session:
        assert session.query(Job).count() == 2


def test_an_advance_waits_for_another_ones_turn_and_takes_over_a_crashed_one(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    sweep_id = create(settings, sessions, strategy={"name": "grid"}, budget={"max_parallel": 1})
    end_rung(sessions, trials(sessions, sweep_id)[0].job_id or "", 0.5)
    with sessions() as session:
        held = utcnow() + timedelta(seconds=60)
        session.execute(update(Sweep).values(advancing_until=held))
        session.commit()

    advance(settings, sessions, sweep_id)
    assert [t.state for t in trials(sessions, sweep_id)][:2] == ["running", "pending"]

    with sessions() as session:  # the advance holding the turn crashed; its turn expires
        session.execute(update(Sweep).values(advancing_until=utcnow() - timedelta(seconds=1)))
        session.commit()
    advance(settings, sessions, sweep_id)
    assert [t.state for t in trials(sessions, sweep_id)][:2] == ["done", "running"]


def test_time_to_target_ranks_trials_that_reached_it_first_then_by_metric(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    sweep_id = create(
        settings,
        sessions,
        strategy={"name": "grid"},
        objective={"minimize": "time_to_target", "target": {"value": 0.9}},
        include_base=True,
        budget={"max_trials": 7, "max_parallel": 7},
    )
    started = trials(sessions, sweep_id)
    outcomes: list[tuple[float, float | None]] = [
        (0.95, 4.0),  # the base
        (0.80, None),
        (0.92, 1.0),
        (0.85, None),
        (0.91, 2.0),
        (0.70, None),
        (0.93, 8.0),
    ]
    for trial, (accuracy, target_s) in zip(started, outcomes, strict=True):
        end_rung(sessions, trial.job_id or "", accuracy, target_s)
    advance(settings, sessions, sweep_id)

    with sessions() as session:
        view = lifecycle.describe(session=session, sweep=sweep_row(sessions, sweep_id))
    assert view.status == "succeeded"
    assert view.leaderboard == [2, 4, 0, 6, 3, 1, 5]
    assert view.best is not None and view.best.speedup == pytest.approx(4.0)
    by_lr = next(e for e in view.explanation if e.path == "optimizer.lr")
    assert by_lr.values[0].value == str(LRS[1]) and by_lr.values[0].best_time_to_target_s == 1.0


def test_past_max_total_s_the_sweep_cancels_its_open_trials_and_ranks_what_ran(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    sweep_id = create(
        settings,
        sessions,
        strategy={"name": "grid"},
        budget={"max_trials": 6, "max_parallel": 2, "max_total_s": 60},
    )
    first = trials(sessions, sweep_id)[0]
    end_rung(sessions, first.job_id or "", 0.7)
    with sessions() as session:
        session.execute(update(Sweep).values(created_at=utcnow() - timedelta(seconds=61)))
        session.commit()

    advance(settings, sessions, sweep_id)

    ended = sweep_row(sessions, sweep_id)
    assert (ended.status, ended.reason) == ("succeeded", "max_total_s")
    states = [t.state for t in trials(sessions, sweep_id)]
    assert states == ["done"] + ["cancelled"] * 5
    second = job(sessions, trials(sessions, sweep_id)[1].job_id)
    assert second.status == "cancelled"


def test_time_to_target_adds_the_earlier_rungs_and_the_target_ends_a_trial(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    sweep_id = create(
        settings,
        sessions,
        space={"optimizer.lr": LRS[:3]},
        objective={"minimize": "time_to_target", "target": {"value": 0.9}},
        budget={"max_trials": 3, "max_parallel": 3},
    )
    for trial, accuracy in zip(trials(sessions, sweep_id), (0.85, 0.80, 0.70), strict=True):
        end_rung(sessions, trial.job_id or "", accuracy)
    advance(settings, sessions, sweep_id)

    # None reached the target: the closest goes on, the rest stop.
    now = trials(sessions, sweep_id)
    assert [(t.state, t.rung) for t in now] == [("running", 1), ("stopped", 0), ("stopped", 0)]
    end_rung(sessions, now[0].job_id or "", 0.91, target_s=0.25)
    advance(settings, sessions, sweep_id)

    with sessions() as session:
        view = lifecycle.describe(session=session, sweep=sweep_row(sessions, sweep_id))
    assert view.status == "succeeded"
    assert (view.trials[0].state, view.trials[0].reason) == ("done", "target reached")
    # Rung 0's epoch (1 s), then 0.25 s into rung 1; its last rung (9 epochs) never ran.
    assert [t.time_to_target_s for t in view.trials] == [pytest.approx(1.25), None, None]
    assert view.leaderboard == [0, 1, 2]
    assert view.best is not None and view.best.spec["training"]["epochs"] == 3
