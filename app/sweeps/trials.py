"""A sweep's trials as job specs: the rungs they train to, each trial's complete spec, and
the check that every trial is a job the service would accept, before anything runs."""

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from app.config import Settings
from app.errors import ErrorDetail, SpecInvalid
from app.jobs import planning
from app.spec import JobSpec
from app.spec.sweeps import Halving, SweepSpec, apply, known_path, shown

MAX_TAGS = 32


def sweep_tag(sweep_id: str) -> str:
    """The tag every trial job of the sweep carries."""
    return f"sweep:{sweep_id}"


def rungs(spec: SweepSpec) -> list[int]:
    """The epochs each rung trains to: min_epochs x eta^k up to the base's epochs."""
    epochs = spec.base.training.epochs
    strategy = spec.strategy
    if not isinstance(strategy, Halving):
        return [epochs]
    out = []
    rung = strategy.min_epochs
    while rung < epochs:
        out.append(rung)
        rung *= strategy.eta
    return [*out, epochs]


def trial_spec(spec: SweepSpec, config: dict[str, Any]) -> dict[str, Any]:
    """The complete job spec of a trial: the base as sent, its config applied, and the
    objective's target (so the job stops there and reports its time to it)."""
    raw = apply(spec.base.model_dump(mode="json", exclude_unset=True), config)
    if spec.objective.target is not None:
        training = raw.setdefault("training", {})
        training["target"] = spec.objective.target.model_dump(mode="json")
    return raw


def job_spec(
    spec: SweepSpec, sweep_id: str, position: int, config: dict[str, Any], epochs: int
) -> dict[str, Any]:
    raw = trial_spec(spec, config)
    raw["training"] = {**raw["training"], "epochs": epochs}
    raw["name"] = f"{spec.name} #{position}"[:200]
    raw["tags"] = [*raw.get("tags", []), sweep_tag(sweep_id)]
    return raw


def validate(
    session: Session,
    spec: SweepSpec,
    configs: list[dict[str, Any]],
    *,
    tenant: str,
    limits: Settings,
) -> None:
    """Every trial must be a job the service would accept: otherwise a 422 naming the
    space path (or base field) that is wrong, before anything is stored or run."""
    if len(spec.base.tags) >= MAX_TAGS:
        raise SpecInvalid.at("base.tags", f"a sweep tags its trials; give at most {MAX_TAGS - 1}")
    full = spec.base.model_dump(mode="json")
    for path in spec.space:
        if not known_path(full, path):
            raise SpecInvalid.at(
                f"space.{path}",
                "the base spec has no such field; vary a field it has, or a whole object above it",
            )
    if isinstance(spec.strategy, Halving) and "training.epochs" in spec.space:
        raise SpecInvalid.at("space.training.epochs", "halving decides the epochs of each trial")
    if spec.objective.target is not None and "training.target" in spec.space:
        raise SpecInvalid.at("space.training.target", "the objective's target is every trial's")
    try:
        base = JobSpec.model_validate(trial_spec(spec, {}))
        planning.plan(session, base, tenant=tenant, limits=limits)
    except ValidationError as error:  # the base was valid: the objective's target is not
        raise SpecInvalid.at("objective.target", error.errors()[0]["msg"]) from None
    except SpecInvalid as error:
        raise _renamed(error, field_of=_base_field) from None
    epochs = rungs(spec)[0]
    for position, config in enumerate(configs):
        raw = job_spec(spec, "validate", position, config, epochs)
        try:
            parsed = JobSpec.model_validate(raw)
        except ValidationError as error:
            problem = error.errors()[0]
            loc = [str(part) for part in problem["loc"]]
            path = _blame(config, loc)
            where = ".".join(loc)
            raise SpecInvalid.at(
                f"space.{path}",
                f"{shown(config.get(path))} makes the spec invalid: {where}: {problem['msg']}",
            ) from None
        try:
            planning.plan(session, parsed, tenant=tenant, limits=limits)
        except SpecInvalid as error:
            field = error.details[0].field if error.details else "spec"
            path = _blame(config, field.split("."))
            value = shown(config.get(path))
            prefix = f"{value} makes the spec invalid: "
            raise _renamed(error, field_of=_always(f"space.{path}"), prefix=prefix) from None
    session.rollback()  # planning share-locked the datasets; nothing was written


def _blame(config: dict[str, Any], loc: list[str]) -> str:
    """The config path that most likely made the error at `loc` (longest shared prefix)."""
    if not config:
        return "base"

    def shared(path: str) -> int:
        count = 0
        for part, there in zip(path.split("."), [p for p in loc if not p.isdigit()], strict=False):
            if part != there:
                break
            count += 1
        return count

    return max(config, key=shared)


def _always(name: str) -> Callable[[str], str]:
    return lambda _field: name


def _base_field(field: str) -> str:
    """Where in the sweep request a field of the base trial's spec comes from."""
    if field.startswith("training.target"):
        return "objective.target" + field.removeprefix("training.target")
    return f"base.{field}"


def _renamed(
    error: SpecInvalid, *, field_of: Callable[[str], str], prefix: str = ""
) -> SpecInvalid:
    """The error of a trial's spec, named by the sweep request's field."""
    details = [
        ErrorDetail(field_of(d.field), f"{prefix}{d.field}: {d.message}") for d in error.details
    ]
    message = "; ".join(f"{d.field}: {d.message}" for d in details) or error.message
    return SpecInvalid(message, details)
