from fastapi import APIRouter, Response, status

from app.deps import CallerDep, PageDep, ServicesDep, SessionDep
from app.keys import service
from app.keys.schemas import KeyCreate, KeyCreated, KeyOut, KeyPage, WhoAmI
from app.openapi import errors

router = APIRouter(prefix="/v1/keys", tags=["keys"])


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=KeyCreated, responses=errors(403)
)
def create_key(
    request: KeyCreate, caller: CallerDep, session: SessionDep, services: ServicesDep
) -> KeyCreated:
    """Create a key for a tenant (admin token only); the key is shown in this answer only."""
    key, token = service.create(
        session=session,
        caller=caller,
        secret_key=services.secrets.secret_key,
        tenant=request.tenant,
        name=request.name,
    )
    return KeyCreated(**KeyOut.model_validate(key).model_dump(), key=token)


@router.get("/me", response_model=WhoAmI)
def whoami(caller: CallerDep) -> WhoAmI:
    """Which tenant the key of this request acts as (`taas whoami`)."""
    return WhoAmI(tenant=caller.tenant, key_id=caller.key_id, admin=caller.is_admin)


@router.get("", response_model=KeyPage)
def list_keys(
    caller: CallerDep,
    session: SessionDep,
    page: PageDep,
) -> KeyPage:
    """List keys, newest first: the admin sees every tenant's, a tenant its own."""
    rows = service.page(session=session, caller=caller, cursor=page.cursor, limit=page.limit)
    return KeyPage(
        items=[KeyOut.model_validate(r) for r in rows],
        next_cursor=page.next_cursor(rows, lambda row: row.id),
    )


@router.delete(
    "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=errors(404),
)
def revoke_key(key_id: str, caller: CallerDep, session: SessionDep) -> None:
    """Revoke a key: refused from the next request on; its open streams close."""
    service.revoke(session=session, caller=caller, key_id=key_id)
