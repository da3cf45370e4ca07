from pydantic import BaseModel, ConfigDict

MAX_EPOCHS = 10_000


class Strict(BaseModel):
    """Unknown fields are errors (a typo is a 422 naming it, not a silently ignored option),
    and NaN and Infinity, which parse as JSON numbers in Python, are valid nowhere."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
