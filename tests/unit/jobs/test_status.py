"""JobStatus is the one list of a job's statuses."""

from app.jobs.status import OPEN, TERMINAL, JobStatus


def test_every_status_is_open_or_terminal_never_both() -> None:
    assert set(OPEN) | TERMINAL == set(JobStatus)
    assert set(OPEN) & TERMINAL == set()


def test_statuses_are_stored_and_sent_as_their_plain_words() -> None:
    assert [str(s) for s in JobStatus] == ["queued", "running", "succeeded", "failed", "cancelled"]
