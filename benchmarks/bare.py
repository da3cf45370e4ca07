"""The API benchmark's yardstick: a bare FastAPI app answering one JSON document."""

from typing import Any

from fastapi import FastAPI

app = FastAPI()
# About the size of a job's JSON, so both answers cost the same to serialise and send.
DOCUMENT: dict[str, Any] = {"id": "job_0", "status": "succeeded", "padding": "x" * 1500}


@app.get("/v1/jobs/{job_id}")
def get_job(job_id: str) -> dict[str, Any]:
    return {**DOCUMENT, "id": job_id}
