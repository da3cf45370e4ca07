"""Fixtures: real databases through the real migrations, real workers, real brokers.

SQLite runs everywhere. Postgres + Redis run when they answer, and under CI=true they
must: a test that needs them fails instead of skipping.
"""

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.config import Settings
from app.main import create_app
from app.migrate import upgrade
from app.orm import Base

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT.parent / "shared" / "datasets" / "mnist"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
POSTGRES_URL = os.environ.get(
    "TAAS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("TAAS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# Short enough that tests see heartbeats and housekeeping quickly.
TEST_HEARTBEAT_S = 0.5
WORKER_READY_TIMEOUT_S = 60.0
# Every test app has these; `client` acts as the tenant `admin`.
ADMIN_TOKEN = "taas_test_admin_token_0123456789"
SECRET_KEY = "test-secret-key-0123456789"
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def stack_unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true needs Postgres and Redis: {reason}")
    pytest.skip(f"Postgres/Redis not available: {reason}")


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh database for this test session, created in the test cluster and dropped after."""
    name = f"taas_test_{uuid.uuid4().hex[:12]}"
    admin_url = make_url(POSTGRES_URL)
    try:
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:
        stack_unavailable(str(error))
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def redis_url() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        stack_unavailable(str(error))
    return REDIS_URL


@pytest.fixture(scope="session")
def migrated_postgres(postgres_database: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    upgrade(Settings(data_dir=tmp_path_factory.mktemp("pg"), database_url=postgres_database))
    return postgres_database


def empty_tables(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        names = ", ".join(table.name for table in Base.metadata.sorted_tables)
        connection.execute(text(f"TRUNCATE {names} CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings for one test: SQLite in tmp_path, or (for `backend == postgres`) the stack."""
    backend = request.getfixturevalue("backend") if "backend" in request.fixturenames else "sqlite"
    queue = f"taas.test.{uuid.uuid4().hex[:8]}"  # tests never consume each other's doorbells
    if backend == "postgres":
        url = request.getfixturevalue("migrated_postgres")
        empty_tables(url)
        return Settings(
            data_dir=tmp_path,
            database_url=url,
            redis_url=request.getfixturevalue("redis_url"),
            task_queue=queue,
            heartbeat_s=TEST_HEARTBEAT_S,
            admin_token=ADMIN_TOKEN,
            secret_key=SECRET_KEY,
        )
    settings = Settings(
        data_dir=tmp_path,
        task_queue=queue,
        heartbeat_s=TEST_HEARTBEAT_S,
        admin_token=ADMIN_TOKEN,
        secret_key=SECRET_KEY,
    )
    upgrade(settings)
    return settings


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), headers=ADMIN_HEADERS) as test_client:
        yield test_client


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a process exactly these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAAS_")}
    for name, value in settings.model_dump().items():
        if value is not None:
            plain = isinstance(value, str | int | float | Path)
            env[f"TAAS_{name.upper()}"] = str(value) if plain else json.dumps(value)
    env["TAAS_DATABASE_URL"] = settings.sqlalchemy_url
    return env


class Workers:
    """Real `python -m worker` processes on the test's database and broker."""

    def __init__(self, settings: Settings, client: TestClient) -> None:
        self.settings, self.client = settings, client
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, settings: Settings | None = None) -> subprocess.Popen[bytes]:
        """Start one and wait until it is ready (its first heartbeat is in the database)."""
        settings = settings or self.settings
        index = len(self.processes)
        log_path = settings.data_dir / f"worker-{index}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "worker", "--loglevel=INFO"],
                cwd=ROOT,
                env=settings_env(settings),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.processes.append(process)
        deadline = time.monotonic() + WORKER_READY_TIMEOUT_S
        # The first heartbeat comes from the housekeeping thread, which starts only once
        # Celery says the worker is ready to consume.
        while self.alive() <= sum(1 for p in self.processes[:-1] if p.poll() is None):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                output = log_path.read_text(errors="replace")[-4000:]
                pytest.fail(f"the worker did not start:\n{output}")
            time.sleep(0.1)
        return process

    def alive(self) -> int:
        return sum(1 for w in self.client.get("/v1/workers").json()["items"] if w["alive"])

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def workers(settings: Settings, client: TestClient) -> Iterator[Workers]:
    fleet = Workers(settings, client)
    yield fleet
    fleet.stop_all()


@pytest.fixture
def worker(workers: Workers) -> subprocess.Popen[bytes]:
    """One ready worker."""
    return workers.start()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_http(url: str, process: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"{url} did not answer within {timeout_s} s")
