from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field
from typing_extensions import TypeAliasType

from app.jobs.status import JobStatus
from app.openapi import declared_as
from app.spec import JobSpec
from app.spec.base import Strict
from app.spec.optimization import Target
from app.spec.schemas import NAME_PATTERN
from app.spec.sweeps import Budget

SweepStatus = TypeAliasType("SweepStatus", Literal["running", "succeeded", "failed", "cancelled"])
TrialState = TypeAliasType(
    "TrialState",
    Literal["pending", "running", "waiting", "promoted", "done", "stopped", "failed", "cancelled"],
)

# The advisor's default budget: twelve sampled trials and the base.
ADVISE_BUDGET = Budget(max_trials=13, max_parallel=2)


class AdviseRequest(Strict):
    name: str = Field("advise", min_length=1, max_length=200, pattern=NAME_PATTERN)
    base: JobSpec
    target: Target | None = Field(None, description="Default: the base's training.target.")
    budget: Budget = ADVISE_BUDGET


class TrialOut(BaseModel):
    position: int
    config: dict[str, Any] = Field(description="The fields this trial changes, by dotted path.")
    state: TrialState
    reason: str | None
    rung: int
    job_id: str | None = Field(description="The trial's current (latest) job.")
    jobs: list[str] = Field(description="Its jobs, one per rung it reached.")
    job_status: JobStatus | None
    epochs: int | None = Field(description="Epochs trained so far, across rungs.")
    time_to_target_s: float | None = Field(
        description="First training step to the target, across rungs (training wall time)."
    )
    best: float | None = Field(description="The best value of the objective's metric.")
    compute_s: float = Field(description="Training and evaluation time of all its jobs.")


class ValueEffect(BaseModel):
    value: str
    trials: int
    reached: int = Field(description="Trials with this value that reached the target.")
    best_time_to_target_s: float | None
    best: float | None = Field(description="Best value of the objective's metric.")


class PathEffect(BaseModel):
    path: str
    values: list[ValueEffect] = Field(description="Best first.")


class Best(BaseModel):
    trial: int
    config: dict[str, Any]
    spec: Annotated[dict[str, Any], declared_as("JobSpec")] = Field(
        description="The complete job spec as the winner last ran (its rung's epochs), "
        "ready to POST /v1/jobs."
    )
    time_to_target_s: float | None
    best: float | None
    speedup: float | None = Field(
        description="With the base as a trial: its time to target / this one's."
    )


class SweepOut(BaseModel):
    id: str
    name: str
    status: SweepStatus
    reason: str | None
    created_at: datetime
    finished_at: datetime | None
    strategy: Annotated[dict[str, Any], declared_as("Strategy")]
    objective: Annotated[dict[str, Any], declared_as("Objective")]
    budget: Annotated[dict[str, Any], declared_as("Budget")]
    rungs: list[int] = Field(description="Epochs each rung trains to.")
    trials: list[TrialOut]
    leaderboard: list[int] = Field(description="Trial positions, best first (measured ones).")
    best: Best | None
    explanation: list[PathEffect] = Field(description="Per varied field: how its values did.")
    summary: list[str] = Field(description="What mattered, in words.")
    compute_s: float = Field(description="Training and evaluation time of every trial job.")


class SweepPage(BaseModel):
    items: list[SweepOut]
    next_cursor: str | None
