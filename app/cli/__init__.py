"""The `taas` command: run the service (up, api, worker, migrate, token) and use it
(submit, follow, status, datasets, login, ...).

Every failure prints one or two lines and exits 1; `taas --debug ...` shows the traceback.
"""

import json
import sys
import traceback

from app.cli import account, fetch, jobs, resources, server
from app.cli.app import DEBUG, cli
from app.cli.errors import CliError

__all__ = ["account", "cli", "fetch", "jobs", "main", "resources", "server"]


def main() -> None:
    try:
        cli()
    except CliError as error:
        _fail(str(error), error)
    except json.JSONDecodeError as error:
        _fail(f"not valid JSON at line {error.lineno}, column {error.colno}: {error.msg}", error)
    except OSError as error:
        _fail(f"{error.strerror or error}: {error.filename or ''}".rstrip(": "), error)


def _fail(message: str, error: BaseException) -> None:
    if DEBUG["on"]:
        traceback.print_exception(error)
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)
