from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict

MAX_EPOCHS = 10_000


class Strict(BaseModel):
    """Unknown fields are errors (a typo is a 422 naming it, not a silently ignored option),
    and NaN and Infinity, which parse as JSON numbers in Python, are valid nowhere.

    Values are not coerced: `"epochs": true` or `"10"` is a 422, as the OpenAPI document
    (integer, boolean) says, not a silent 1 or 10. An integer is still a valid float."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)


def _array_as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


T = TypeVar("T")
# Strict validation of Python values takes only tuples for a tuple; a JSON body (and a
# stored spec) holds arrays. The items stay strict.
Pair = Annotated[T, BeforeValidator(_array_as_tuple)]
