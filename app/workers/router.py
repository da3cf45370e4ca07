from fastapi import APIRouter

from app.deps import CallerDep, ServicesDep, SessionDep
from app.workers import service
from app.workers.schemas import WorkerOut, WorkerPage

router = APIRouter(prefix="/v1/workers", tags=["workers"])


@router.get("", response_model=WorkerPage)
def list_workers(caller: CallerDep, session: SessionDep, services: ServicesDep) -> WorkerPage:
    """The worker fleet: each worker's device, current job, and whether it is alive."""
    fleet = service.fleet(session=session, heartbeat_s=services.settings.heartbeat_s)
    items = [
        WorkerOut(
            id=w.id,
            hostname=w.hostname,
            device=w.device,
            job_id=w.job_id,
            started_at=w.started_at,
            last_seen_at=w.last_seen_at,
            alive=alive,
        )
        for w, alive in fleet
    ]
    return WorkerPage(items=items)
