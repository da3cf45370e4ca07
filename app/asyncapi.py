"""The websocket streams as an AsyncAPI 3.0 document, served at /asyncapi.json.

Its message schemas are the OpenAPI document's own components (Event is what
`GET /v1/jobs/{id}/events` lists and what the job stream sends), copied from the served
OpenAPI document when the AsyncAPI one is built, so the two cannot drift.
"""

from typing import Any

STREAMS_DESCRIPTION = """
## Streams (websockets)

Authenticate as for HTTP (`Authorization: Bearer <key>`) or, from a browser, with the
subprotocols `["bearer", "<key>"]`. The server accepts, then sends JSON text messages;
clients only listen. Close codes: 1000 after the last message of a finished job or
sweep; 4000 + the HTTP status a request would get otherwise (4401 unknown or revoked
key, 4404 no such job or sweep, 4422 a bad `after`), after the socket was accepted.

- `WS /v1/jobs/{job_id}/stream?after=SEQ`: the job's events with `seq > after`, oldest
  first (an `Event`, as `GET /v1/jobs/{job_id}/events` lists them), then live ones,
  closing with 1000 after the job has ended. Reconnect with the last `seq` seen to miss
  nothing and see nothing twice.
- `WS /v1/sweeps/{sweep_id}/stream`: `{"type": "sweep", "data": <SweepOut>}` whenever the
  sweep changes, closing with 1000 after it has ended.

The same, machine-readable: the AsyncAPI document at `/asyncapi.json`.
"""

CLOSE_CODES = (
    "1000: the job or sweep has ended and every message was sent. "
    "4401: no key, an unknown one, or the key was revoked while streaming. "
    "4404: no such job or sweep for this tenant. 4422: a bad `after`."
)


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
            "description": STREAMS_DESCRIPTION.strip() + "\n\n" + CLOSE_CODES,
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
