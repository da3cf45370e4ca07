"""Domain errors: each carries its HTTP status and a stable code; one handler renders them."""

import math
from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class ErrorDetail:
    """One problem with one field of a request, e.g. `model.layers[3].out_features`."""

    field: str
    message: str

    def as_json(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class AppError(Exception):
    status_code: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"

    def __init__(self, message: str, details: list[ErrorDetail] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []
        self.headers: dict[str, str] = {}


class NotFound(AppError):
    status_code = 404
    code = "not_found"


class JobNotFound(NotFound):
    code = "job_not_found"

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id!r} does not exist")


class DatasetNotFound(NotFound):
    code = "dataset_not_found"

    def __init__(self, dataset_id: str) -> None:
        super().__init__(f"dataset {dataset_id!r} does not exist")


class CheckpointNotFound(NotFound):
    code = "checkpoint_not_found"

    def __init__(self, checkpoint_id: str) -> None:
        super().__init__(f"checkpoint {checkpoint_id!r} does not exist")


class InvalidTransition(AppError):
    status_code = 409
    code = "invalid_transition"


class SpecInvalid(AppError):
    """A job spec that parses but cannot be trained (shapes, classes, unknown references)."""

    status_code = 422
    code = "invalid_spec"

    @classmethod
    def at(cls, field: str, message: str) -> "SpecInvalid":
        return cls(f"{field}: {message}", [ErrorDetail(field, message)])


class UploadInvalid(AppError):
    status_code = 422
    code = "invalid_upload"

    @classmethod
    def at(cls, field: str, message: str) -> "UploadInvalid":
        return cls(f"{field}: {message}", [ErrorDetail(field, message)])


class UploadTooLarge(AppError):
    status_code = 413
    code = "upload_too_large"


class InvalidCursor(AppError):
    status_code = 422
    code = "invalid_cursor"


class ServiceUnavailable(AppError):
    status_code = 503
    code = "unavailable"


class RateLimited(AppError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(max(1, math.ceil(retry_after_s)))}


class TooManyJobs(AppError):
    status_code = 429
    code = "too_many_jobs"
    # When a queued job starts is not known here; a client retrying sooner only spends
    # its rate limit, and a queue that moves at all moves within this.
    RETRY_AFTER_S = 10

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(self.RETRY_AFTER_S)}
