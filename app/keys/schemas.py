from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.spec.schemas import NAME_PATTERN

# Tenant names go into ids, logs and URLs: short, lower case, no surprises.
TENANT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"


@dataclass(frozen=True)
class Caller:
    """Who sent a request: a tenant, by one of its keys or (as `admin`) the admin token."""

    tenant: str
    key_id: str | None  # None for the admin token, which cannot be revoked
    is_admin: bool


class WhoAmI(BaseModel):
    tenant: str = Field(description="The tenant this key acts as.")
    key_id: str | None = Field(description="The key's id; null for the admin token.")
    admin: bool


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    tenant: str = Field(pattern=TENANT_PATTERN, description="Who the key acts as.")
    name: str = Field(
        "key",
        min_length=1,
        max_length=200,
        pattern=NAME_PATTERN,
        description="What the key is for (no control characters).",
    )


class KeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    tenant: str
    name: str
    prefix: str = Field(description="The key's first characters, to recognise it.")
    created_at: datetime
    revoked_at: datetime | None


class KeyCreated(KeyOut):
    key: str = Field(description="The key itself: shown this once, stored only as an HMAC.")


class KeyPage(BaseModel):
    items: list[KeyOut]
    next_cursor: str | None
