"""Keys: the server's secrets, creating and revoking tenants' keys, and who a token is."""

import hashlib
import hmac
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from sqlalchemy.orm import Session

from app.config import Settings
from app.errors import AppError, NotFound
from app.ids import new_id
from app.keys import repository
from app.keys.schemas import Caller
from app.orm import ApiKey
from app.orm.base import utcnow

logger = logging.getLogger(__name__)

# A fixed prefix makes leaked keys easy to find with a secret scanner or grep.
KEY_PREFIX: Final = "taas_"
# 32 random bytes: 256 bits, far beyond guessing.
KEY_BYTES: Final = 32
# Characters of a key kept in clear to recognise it (prefix + 6 random characters).
SHOWN_CHARS: Final = len(KEY_PREFIX) + 6
ADMIN_TENANT: Final = "admin"
ADMIN_TOKEN_FILE: Final = "admin_token"
SECRET_KEY_FILE: Final = "secret_key"


class Unauthorized(AppError):
    status_code = 401
    code = "unauthorized"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.headers = {"WWW-Authenticate": "Bearer"}


class AdminOnly(AppError):
    status_code = 403
    code = "admin_only"


class KeyNotFound(NotFound):
    code = "key_not_found"

    def __init__(self, key_id: str) -> None:
        super().__init__(f"key {key_id!r} does not exist")


@dataclass(frozen=True)
class ServerSecrets:
    admin_token: str
    secret_key: str


def new_token() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)


def _kept(path: Path) -> tuple[str, bool]:
    """The secret in `path`, written there first if there is none; and whether it was new.

    O_EXCL makes processes starting together (API, worker) agree on one secret.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip(), False
    with os.fdopen(fd, "w") as file:
        value = new_token()
        file.write(value + "\n")
    return value, True


def admin_token_path(data_dir: Path) -> Path:
    return data_dir.resolve() / ADMIN_TOKEN_FILE


def server_secrets(settings: Settings) -> ServerSecrets:
    """The admin token and HMAC secret: from TAAS_* settings, else kept in the data dir."""
    admin = settings.admin_token or _kept(admin_token_path(settings.data_dir))[0]
    secret = settings.secret_key or _kept(settings.data_dir.resolve() / SECRET_KEY_FILE)[0]
    return ServerSecrets(admin_token=admin, secret_key=secret)


def digest(secret_key: str, key: str) -> str:
    return hmac.new(secret_key.encode(), key.encode(), hashlib.sha256).hexdigest()


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header; Unauthorized otherwise."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send Authorization: Bearer <key>")
    return token.strip()


def authenticate(*, session: Session, secrets: ServerSecrets, token: str) -> Caller:
    """Who the token belongs to: the admin, or a tenant by an unrevoked key."""
    if hmac.compare_digest(token.encode(), secrets.admin_token.encode()):
        return Caller(tenant=ADMIN_TENANT, key_id=None, is_admin=True)
    wanted = digest(secrets.secret_key, token)
    key = repository.by_digest(session, wanted)
    # The lookup is by HMAC, so its timing says nothing about the key; compare anyway.
    if key is None or key.revoked_at is not None or not hmac.compare_digest(key.digest, wanted):
        raise Unauthorized("the key is unknown or revoked")
    return Caller(tenant=key.tenant, key_id=key.id, is_admin=False)


def is_active(*, session: Session, key_id: str) -> bool:
    """Whether the key still exists unrevoked (an open stream asks this as it goes)."""
    key = repository.get(session, key_id)
    return key is not None and key.revoked_at is None


def create(
    *, session: Session, caller: Caller, secret_key: str, tenant: str, name: str
) -> tuple[ApiKey, str]:
    """A new key for `tenant` (admin only): the row, and the key shown this once."""
    if not caller.is_admin:
        raise AdminOnly("only the admin token creates keys")
    token = new_token()
    key = ApiKey(
        id=new_id("key"),
        tenant=tenant,
        name=name,
        prefix=token[:SHOWN_CHARS],
        digest=digest(secret_key, token),
        created_at=utcnow(),
        revoked_at=None,
    )
    repository.add(session, key)
    session.commit()
    logger.info("created key %s (%s...) for tenant %s", key.id, key.prefix, tenant)
    return key, token


def _visible(session: Session, caller: Caller, key_id: str) -> ApiKey:
    key = repository.get(session, key_id)
    if key is None or not (caller.is_admin or key.tenant == caller.tenant):
        raise KeyNotFound(key_id)
    return key


def revoke(*, session: Session, caller: Caller, key_id: str) -> None:
    """Revoke a key: the admin any, a tenant its own; effective on the next request."""
    key = _visible(session, caller, key_id)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        session.commit()
        logger.info("revoked key %s of tenant %s", key.id, key.tenant)


def page(*, session: Session, caller: Caller, cursor: str | None, limit: int) -> list[ApiKey]:
    """Keys newest first: every tenant's for the admin, a tenant's own otherwise."""
    tenant = None if caller.is_admin else caller.tenant
    return repository.page(session, tenant=tenant, after=cursor, limit=limit)
