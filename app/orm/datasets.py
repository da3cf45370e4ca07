from datetime import datetime

from sqlalchemy import JSON, BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from app.orm.base import Base, utcnow


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(200))
    format: Mapped[str] = mapped_column(String(16))
    samples: Mapped[int]
    input_shape: Mapped[list[int]] = mapped_column(JSON)
    # classification: integer labels in [0, classes); regression: `targets` floats per sample.
    task: Mapped[str] = mapped_column(String(16), default="classification")
    classes: Mapped[int | None]
    targets: Mapped[int | None]
    bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    # Relative to the artifacts directory, so a data dir can move as a whole.
    path: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
