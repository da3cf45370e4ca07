from datetime import datetime

from pydantic import BaseModel, ConfigDict


class WorkerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    hostname: str
    device: str
    job_id: str | None
    started_at: datetime
    last_seen_at: datetime
    alive: bool


class WorkerPage(BaseModel):
    items: list[WorkerOut]
    next_cursor: str | None = None
