"""Settings: every knob is a TAAS_* environment variable, read once by get_settings()."""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TAAS_", extra="ignore")

    data_dir: Path = Field(Path(".taas"), description="SQLite files and artifacts live here.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default: SQLite at DATA_DIR/taas.db."
    )
    redis_url: str | None = Field(
        None, description="Redis for the broker and live events; default: no Redis at all."
    )
    task_queue: str = Field(
        "taas.train",
        description="Prefix of the broker queues, one per device (.auto, .cpu, .cuda).",
    )
    lease_ttl_s: float = Field(30.0, gt=0, description="A running job's lease lasts this long.")
    heartbeat_s: float = Field(5.0, gt=0, description="How often a worker renews its lease.")
    max_upload_bytes: int = Field(512 * 1024 * 1024, gt=0)
    event_poll_s: float = Field(
        0.25, gt=0, description="Without Redis, streams look for new events this often."
    )
    step_metric_interval_s: float = Field(
        1.0, gt=0, description="A running job reports step metrics at most this often."
    )
    reconcile_after_s: float = Field(
        60.0, gt=0, description="A queued job whose doorbell is older than this is re-sent."
    )
    gang_host: str = Field(
        "127.0.0.1",
        description="The address other workers reach this one at, when it leads a "
        "multi-worker DDP job (its rendezvous listens there).",
    )
    worker_device: Literal["auto", "cpu", "cuda"] = Field(
        "auto",
        description="What a worker trains on, so which queue it takes jobs from: auto looks "
        "for an NVIDIA GPU; cpu never takes a cuda job and hides GPUs from its trainers, "
        "even where the host shows them to every container.",
    )
    gang_timeout_s: float = Field(
        60.0,
        gt=0,
        description="A multi-worker job whose gang is not complete by then is re-queued.",
    )
    page_size_max: int = Field(200, gt=0)
    max_restarts: int = Field(
        3,
        ge=0,
        description="A job handed back this many times by infrastructure failures (a lost "
        "worker, a killed trainer) fails on the next one instead of running again.",
    )
    stop_grace_s: float = Field(
        30.0,
        gt=0,
        description="A trainer asked to stop (worker shutdown, cancel) has this long to "
        "checkpoint before it is killed.",
    )
    broker_visibility_timeout_s: float = Field(
        3600.0,
        gt=0,
        description="Redis redelivers a doorbell not acknowledged within this long.",
    )

    # Keys and tenants. Unset, both come from files in the data dir, written on first use,
    # so `taas up` and the `taas` command share them (see app/keys/secrets.py).
    admin_token: str | None = Field(
        None, min_length=16, description="Acts as the tenant `admin` and creates keys."
    )
    secret_key: str | None = Field(
        None, min_length=16, description="Server secret of the keys' HMAC-SHA-256."
    )
    key_check_s: float = Field(
        2.0, gt=0, description="An open stream re-checks that its key is not revoked this often."
    )

    # Limits: sane for one machine, raise them for a shared one.
    max_json_bytes: int = Field(1024 * 1024, gt=0, description="Largest JSON request body.")
    rate_per_s: float = Field(50.0, gt=0, description="A tenant's sustained requests per second.")
    rate_burst: int = Field(200, gt=0, description="Requests a tenant may make at once.")
    max_queued_jobs: int = Field(100, gt=0, description="Queued jobs per tenant.")
    max_running_jobs: int = Field(4, gt=0, description="Running jobs per tenant.")
    max_epochs: int = Field(10_000, gt=0, description="Epochs per job.")
    max_params: int = Field(100_000_000, gt=0, description="Trainable parameters per job.")
    max_dataset_bytes: int = Field(
        4 * 1024**3, gt=0, description="Bytes of a dataset's arrays, uploaded or synthetic."
    )
    tenant_storage_bytes: int = Field(
        32 * 1024**3,
        gt=0,
        description="Bytes of datasets and checkpoints one tenant may store; an upload past "
        "it is refused with 413 storage_quota_exceeded.",
    )
    worker_memory_bytes: int = Field(
        16 * 1024**3,
        gt=0,
        description="Memory a job may need on a worker (host memory on CPU workers, device "
        "memory on GPU ones): a net whose estimate (activations x batch + parameter state, "
        "see POST /v1/models/summary) is larger is refused at submit.",
    )
    janitor_grace_s: float = Field(
        3600.0,
        ge=0,
        description="Staging folders and artifact folders no row points to are removed once "
        "nothing in them has changed for this long (younger ones may still be in flight).",
    )
    janitor_every_s: float = Field(
        900.0, gt=0, description="The API sweeps for such leftovers at start and this often."
    )
    max_runtime_s: float = Field(
        24 * 3600.0, gt=0, description="A running job is stopped with reason timeout after this."
    )
    idempotency_ttl_s: float = Field(
        24 * 3600.0, gt=0, description="How long an Idempotency-Key returns the same job."
    )

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'taas.db').resolve()}"

    @property
    def broker_url(self) -> str:
        # With no Redis the broker is a table in its own SQLite file, so `taas up` needs no
        # server and broker polling never contends with the jobs database's writers.
        return self.redis_url or f"sqla+sqlite:///{(self.data_dir / 'broker.db').resolve()}"

    @property
    def artifacts_dir(self) -> Path:
        return self.data_dir.resolve() / "artifacts"


@lru_cache
def get_settings() -> Settings:
    return Settings()
