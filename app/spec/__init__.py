"""The job language, pure Python: what a client may ask for, and what it will cost."""

from app.spec.schemas import JobSpec, SyntheticData
from app.spec.shapes import NetSummary, summarize

__all__ = ["JobSpec", "NetSummary", "SyntheticData", "summarize"]
