"""The `taas` Typer application, its sub-groups and the options every client command shares."""

from typing import Annotated

import typer
from rich.console import Console

from app.cli.config import resolve
from app.cli.http import ApiClient

# Typer's pretty tracebacks are hundreds of lines; `main` prints a sentence instead and
# `--debug` brings the traceback back.
cli = typer.Typer(
    help="taas: training as a service.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
datasets_cli = typer.Typer(help="Fetch, upload and list datasets.", no_args_is_help=True)
cli.add_typer(datasets_cli, name="datasets")
checkpoints_cli = typer.Typer(help="Upload, describe and download weights.", no_args_is_help=True)
cli.add_typer(checkpoints_cli, name="checkpoints")
keys_cli = typer.Typer(help="Create, list and revoke tenants' keys.", no_args_is_help=True)
cli.add_typer(keys_cli, name="keys")
console = Console()

DEBUG = {"on": False}

Url = Annotated[
    str | None,
    typer.Option(
        envvar="TAAS_URL", help="The API's address (default: `taas login`'s, else :8000)."
    ),
]
Token = Annotated[
    str | None,
    typer.Option(envvar="TAAS_TOKEN", help="The key to send (default: `taas login`'s)."),
]


@cli.callback()
def _options(
    debug: Annotated[
        bool, typer.Option("--debug", envvar="TAAS_DEBUG", help="Show tracebacks on failure.")
    ] = False,
) -> None:
    DEBUG["on"] = debug


def connect(url: str | None, token: str | None) -> ApiClient:
    """A client for the API and key these options (or the stored login) name."""
    target = resolve(url, token)
    return ApiClient(target.url, target.token)
