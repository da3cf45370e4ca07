"""The websocket streams as an AsyncAPI 3.0 document, served at /asyncapi.json.

Its message schemas are the OpenAPI document's own components (Event is what
`GET /v1/jobs/{id}/events` lists and what the job stream sends), copied from the served
OpenAPI document when the AsyncAPI one is built, so the two cannot drift.
"""

from typing import Any

from app.description import STREAMS_DESCRIPTION


def asyncapi_document(openapi: dict[str, Any]) -> dict[str, Any]:
    schemas = openapi["components"]["schemas"]
    needed = referenced({"Event", "SweepOut", "ErrorCode"}, schemas)
    after = {
        "ws": {
            "query": {
                "type": "object",
                "properties": {
                    "after": {
                        "type": "integer",
                        "minimum": 0,
                        "maximum": 2**31 - 1,
                        "default": 0,
                        "description": "Send events with a seq greater than this.",
                    }
                },
            }
        }
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": f"{openapi['info']['title']} streams",
            "version": openapi["info"]["version"],
            "description": STREAMS_DESCRIPTION.strip(),
        },
        "defaultContentType": "application/json",
        "servers": {
            "api": {
                "host": "127.0.0.1:8000",
                "protocol": "ws",
                "description": "Where the API runs (the same host and port as HTTP).",
                "security": [{"$ref": "#/components/securitySchemes/bearer"}],
            }
        },
        "channels": {
            "jobStream": {
                "address": "/v1/jobs/{job_id}/stream",
                "parameters": {"job_id": {"description": "A job id."}},
                "bindings": after,
                "messages": {"event": {"$ref": "#/components/messages/JobEvent"}},
                "description": "The job's events after `after` (query), then live ones.",
            },
            "sweepStream": {
                "address": "/v1/sweeps/{sweep_id}/stream",
                "parameters": {"sweep_id": {"description": "A sweep id."}},
                "messages": {"sweep": {"$ref": "#/components/messages/SweepChanged"}},
            },
        },
        "operations": {
            "receiveJobEvents": {
                "action": "receive",
                "channel": {"$ref": "#/channels/jobStream"},
                "messages": [{"$ref": "#/channels/jobStream/messages/event"}],
            },
            "receiveSweepChanges": {
                "action": "receive",
                "channel": {"$ref": "#/channels/sweepStream"},
                "messages": [{"$ref": "#/channels/sweepStream/messages/sweep"}],
            },
        },
        "components": {
            "messages": {
                "JobEvent": {
                    "name": "JobEvent",
                    "title": "A job event",
                    "payload": {"$ref": "#/components/schemas/Event"},
                },
                "SweepChanged": {
                    "name": "SweepChanged",
                    "title": "The sweep, as GET /v1/sweeps/{sweep_id} shows it",
                    "payload": {"$ref": "#/components/schemas/SweepMessage"},
                },
            },
            "schemas": {
                **{name: schemas[name] for name in sorted(needed)},
                "SweepMessage": {
                    "type": "object",
                    "properties": {
                        "type": {"type": "string", "enum": ["sweep"]},
                        "data": {"$ref": "#/components/schemas/SweepOut"},
                    },
                    "required": ["type", "data"],
                },
            },
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def referenced(names: set[str], schemas: dict[str, Any]) -> set[str]:
    """The named components and every component they refer to."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(refs(schemas[name]))
    return seen


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"].rsplit("/", 1)[-1]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs(value)]
    return []
