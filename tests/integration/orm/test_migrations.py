"""The real Alembic migrations build the schema the ORM expects, and come back down."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from app.config import Settings
from app.db import make_engine
from app.migrate import downgrade, upgrade
from app.orm import Base

pytestmark = pytest.mark.usefixtures("backend")


def test_head_matches_the_orm_exactly(settings: Settings) -> None:
    engine = make_engine(settings)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()

    assert differences == []


def test_downgrade_to_base_and_upgrade_again(settings: Settings) -> None:
    engine = make_engine(settings)

    downgrade(settings, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(settings)
    assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
    engine.dispose()
