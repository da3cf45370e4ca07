"""The OpenAPI document's description: what the console cannot list by itself.

OpenAPI has no way to describe a websocket, so the streams are described here in words;
one constant, so every place that builds the document says the same thing.
"""

AUTHORIZATION = """\
## Authorization

Every `/v1` route takes `Authorization: Bearer <key>`: a tenant's key (`taas_...`, from
`POST /v1/keys`) or the admin token `taas up` printed. In this console press **Authorize**
and paste either one.
"""

STREAMS_DESCRIPTION = """\
## Streams (websockets)

OpenAPI cannot list websockets, so they are described here.

- `ws://HOST/v1/jobs/{job_id}/stream?after=SEQ`: the job's events with `seq > after`
  (default 0: all of them), oldest first, then each new one as it happens. Closes with
  1000 after the job's last event.
- `ws://HOST/v1/sweeps/{sweep_id}/stream`: `{"type": "sweep", "data": SWEEP}`, where SWEEP
  is what `GET /v1/sweeps/{sweep_id}` shows, sent again whenever it changes. Closes with
  1000 once the sweep has ended.

**Authentication.** Send `Authorization: Bearer <key>`, or, from a browser (which cannot
set headers on a websocket), offer the subprotocols `taas.bearer` and the key:
`new WebSocket(url, ["taas.bearer", key])`; the server accepts with `taas.bearer`.
A key never goes in the URL.

**A job stream's messages** are JSON objects, one per message, the same as the items of
`GET /v1/jobs/{job_id}/events`:

```json
{"seq": 42, "type": "metric", "time": "2026-01-01T12:00:00Z",
 "data": {"scope": "step", "epoch": 1, "step": 300, "train_loss": 0.41, "lr": 0.01}}
```

`type` is `status` (`data.status`, `data.reason`), `metric` (`scope` `step` or `epoch`,
with `epoch`, `step` and the metric values), `log` (`level`, `message`), `checkpoint` or
`result`. Seqs are contiguous per job: to resume after a dropped connection, reconnect
with `after=` the last seq received and nothing is lost or repeated.

**Close codes.** 1000: the stream is complete. 4000 + the HTTP status a request would get
when the stream cannot start or must stop: 4401 (no key, unknown key, or the key was
revoked while streaming), 4404 (no such job or sweep for this tenant), 4422 (`after` out
of range), 4429 (over the tenant's request rate), 4400 (a malformed URL).

The same, machine-readable: the AsyncAPI document at `/asyncapi.json`.
"""

DASHBOARD = """\
## The dashboard

`/` is a dashboard built on this same API: it needs the same key and sees what the key sees.
"""

API_DESCRIPTION = "\n".join((AUTHORIZATION, STREAMS_DESCRIPTION, DASHBOARD))
