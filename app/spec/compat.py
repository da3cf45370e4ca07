"""Which checkpoint tensors fit a net, decided from names and shapes alone (no torch).

The API decides a warm start before queueing, from the checkpoint's safetensors header,
and records the plan on the job; the trainer then loads exactly the tensors it lists.
"""

from collections.abc import Mapping
from typing import Any

from app.errors import ErrorDetail, SpecInvalid
from app.spec.schemas import Init
from app.spec.shapes import NetSummary

# Wrappers that prefix every name: DistributedDataParallel and torch.compile.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
FLOAT_DTYPES = frozenset({"F64", "F32", "F16", "BF16"})
INTEGER_DTYPES = frozenset({"I64", "I32", "I16", "I8", "U8"})
# The one integer tensor a net holds: batch norm's step counter.
INTEGER_TENSOR_SUFFIX = ".num_batches_tracked"
MAX_LISTED = 20


def canonical(name: str) -> str:
    """The tensor's name in the bare net: wrapper prefixes stripped."""
    stripped = True
    while stripped:
        stripped = False
        for prefix in WRAPPER_PREFIXES:
            if name.startswith(prefix):
                name, stripped = name[len(prefix) :], True
    return name


def _same_kinds(
    checkpoint_id: str, tensors: Mapping[str, Mapping[str, Any]], loaded: list[str]
) -> None:
    """Loading would cast silently (torch copies BOOL or I64 into a float parameter), so a
    tensor of the wrong kind of number is refused, by name."""
    dtypes = {canonical(name): str(info["dtype"]) for name, info in tensors.items()}
    problems = []
    for name in loaded:
        integer = name.endswith(INTEGER_TENSOR_SUFFIX)
        allowed, kind = (INTEGER_DTYPES, "integer") if integer else (FLOAT_DTYPES, "float")
        if dtypes[name] not in allowed:
            problems.append(
                f"{name}: the checkpoint holds {dtypes[name]} values, the net {kind} ones "
                f"({', '.join(sorted(allowed))})"
            )
    if problems:
        summary = f"checkpoint {checkpoint_id} holds tensors of the wrong dtype"
        details = [ErrorDetail("init.checkpoint", p) for p in problems[:MAX_LISTED]]
        raise SpecInvalid(
            f"init.checkpoint: {problems[0]}", [ErrorDetail("init.checkpoint", summary), *details]
        )


def same_parameter_twice(names: list[str]) -> tuple[str, str] | None:
    """Two names of one parameter once wrapper prefixes are stripped (`1.weight` and
    `module.1.weight`): loading would pick one by position."""
    seen: dict[str, str] = {}
    for name in names:
        bare = canonical(name)
        if bare in seen:
            return seen[bare], name
        seen[bare] = name
    return None


def frozen(param_names: tuple[str, ...], prefixes: list[str]) -> list[str]:
    return [name for name in param_names if any(name.startswith(p) for p in prefixes)]


def plan_warm_start(
    net: NetSummary, checkpoint_id: str, tensors: Mapping[str, Mapping[str, Any]], init: Init
) -> dict[str, Any]:
    """What to load, skip and initialise afresh; a 422 naming the tensors when it cannot fit."""
    wanted = net.tensors
    have = {canonical(name): tuple(info["shape"]) for name, info in tensors.items()}
    for i, prefix in enumerate(init.freeze):
        if not frozen(net.param_names, [prefix]):
            examples = ", ".join(net.param_names[:4])
            raise SpecInvalid.at(
                f"init.freeze[{i}]",
                f"{prefix!r} matches no parameter (they are named {examples}, ...)",
            )
    loaded = [n for n in wanted if have.get(n) == wanted[n]]
    mismatched = [n for n in wanted if n in have and have[n] != wanted[n]]
    missing = [n for n in wanted if n not in have]
    unexpected = [n for n in have if n not in wanted]
    if init.strict and (mismatched or missing or unexpected):
        problems = [
            *(
                f"{n}: the checkpoint has shape {list(have[n])}, the net {list(wanted[n])}"
                for n in mismatched
            ),
            *(f"{n}: the net has it, the checkpoint does not" for n in missing),
            *(f"{n}: the checkpoint has it, the net does not" for n in unexpected),
        ]
        summary = (
            f"checkpoint {checkpoint_id} does not fit the net ({len(problems)} tensors differ); "
            "use strict: false to load only the tensors that fit"
        )
        details = [ErrorDetail("init.checkpoint", p) for p in problems[:MAX_LISTED]]
        raise SpecInvalid(
            f"init.checkpoint: {summary}", [ErrorDetail("init.checkpoint", summary), *details]
        )
    _same_kinds(checkpoint_id, tensors, loaded)
    if not loaded:
        raise SpecInvalid.at(
            "init.checkpoint", f"no tensor of checkpoint {checkpoint_id} fits the net"
        )
    frozen_names = frozen(net.param_names, init.freeze)
    if frozen_names and len(frozen_names) == len(net.param_names):
        # torch's optimizers refuse an empty parameter list: the job could not take a step.
        raise SpecInvalid.at(
            "init.freeze",
            f"freezes all {len(frozen_names)} parameters of the net: nothing is left to train",
        )
    random = [n for n in frozen_names if n not in loaded]
    if random:
        raise SpecInvalid.at(
            "init.freeze",
            f"{', '.join(random[:MAX_LISTED])} would be frozen at random values: "
            "the checkpoint does not provide them",
        )
    return {
        "checkpoint": checkpoint_id,
        "loaded": loaded,
        "skipped": sorted({*mismatched, *unexpected}),
        "initialized": [*mismatched, *missing],
        "frozen": frozen_names,
        "resume": init.resume,
    }
