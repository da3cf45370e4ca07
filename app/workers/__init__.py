"""The fleet: each worker process describes itself here on every heartbeat."""
