"""Settings: every knob is a TAAS_* environment variable, read once by get_settings()."""

from functools import lru_cache
from pathlib import Path

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
