"""The advisor: a ready-made halving sweep that tries the service's levers (optimizer,
batch size, schedule, precision) against a base spec, ranked by time to the target."""

import math
from typing import Any

from sqlalchemy.orm import Session

from app.broker import Dispatcher
from app.config import Settings
from app.errors import SpecInvalid
from app.events.notify import Notifier
from app.orm import Sweep
from app.spec import JobSpec
from app.spec.optimization import Target
from app.spec.sweeps import MAX_MIN_EPOCHS, Budget, SweepSpec
from app.sweeps import lifecycle
from app.sweeps.schemas import AdviseRequest

# The seed's levers, each with learning rates that work for it on small nets: the
# advisor tries these against the base spec itself.
ADVISED_OPTIMIZERS: list[dict[str, Any]] = [
    {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True},
    {"name": "adam", "lr": 0.003},
    {"name": "adam", "lr": 0.01},
    {"name": "adamw", "lr": 0.01, "weight_decay": 0.01},
    {"name": "rmsprop", "lr": 0.001},
]
ADVISED_BATCH_SIZES = [64, 128, 256]
ADVISED_SCHEDULES: list[dict[str, Any]] = [{"name": "constant"}, {"name": "onecycle"}]
ADVISED_PRECISIONS = ["fp32", "auto"]
ADVISED_TRIALS = 12
ADVISED_ETA = 3


def advise(
    *,
    session: Session,
    dispatcher: Dispatcher,
    notifier: Notifier,
    limits: Settings,
    tenant: str,
    request: AdviseRequest,
) -> Sweep:
    """Start the advisor's sweep for a base spec (see advice_spec)."""
    spec = advice_spec(request.base, request.target, request.budget, request.name)
    return lifecycle.create(
        session=session,
        dispatcher=dispatcher,
        notifier=notifier,
        limits=limits,
        tenant=tenant,
        spec=spec,
    )


def advice_spec(base: JobSpec, target: Target | None, budget: Budget, name: str) -> SweepSpec:
    """The advisor's sweep: the base against sampled optimizer, batch size, schedule and
    precision choices, halving on time to the target."""
    chosen = target or base.training.target
    if chosen is None:
        raise SpecInvalid.at("target", "give a target, or a base spec with training.target")
    rung = max(1, math.ceil(base.training.epochs / ADVISED_ETA**2))
    return SweepSpec.model_validate(
        {
            "name": name,
            "base": base.model_dump(mode="json", exclude_unset=True),
            "space": {
                "optimizer": ADVISED_OPTIMIZERS,
                "training.batch_size": ADVISED_BATCH_SIZES,
                "schedule": ADVISED_SCHEDULES,
                "training.precision": ADVISED_PRECISIONS,
            },
            "strategy": {
                "name": "halving",
                "trials": min(ADVISED_TRIALS, budget.max_trials - 1) or 1,
                "eta": ADVISED_ETA,
                "min_epochs": min(rung, MAX_MIN_EPOCHS),
            },
            "objective": {"minimize": "time_to_target", "target": chosen.model_dump(mode="json")},
            "budget": budget.model_dump(mode="json", exclude_none=True),
            "include_base": True,
        }
    )
