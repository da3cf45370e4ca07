"""Public ids: a prefix naming the kind, then time-ordered hex, so ids sort by creation."""

import secrets
import time


def new_id(prefix: str) -> str:
    return f"{prefix}_{time.time_ns():016x}{secrets.token_hex(6)}"
