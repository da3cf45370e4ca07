"""`taas login` and `taas whoami`: which API and which key the other commands use."""

from typing import Annotated

import typer

import app.cli.config as config
from app.cli.app import cli, console
from app.cli.http import ApiClient


@cli.command()
def login(
    url: Annotated[str | None, typer.Option(help="The API's address (asked when missing).")] = None,
    token: Annotated[str | None, typer.Option(help="Your key (asked when missing).")] = None,
) -> None:
    """Check a key against the API and store both in your config folder (mode 600); every
    command then uses them from any folder."""
    if url is None:
        url = typer.prompt("API address", default=config.DEFAULT_URL)
    if not token:
        token = str(typer.prompt("Key (taas_...)", hide_input=True)).strip()
    url = config.normalize(url)
    with ApiClient(url, token) as client:
        me = client.get("/v1/keys/me")
    path = config.store_login(url, token)
    console.print(f"logged in to {url} as tenant {me['tenant']} (stored in {path})")


@cli.command()
def whoami(
    url: Annotated[str | None, typer.Option(envvar="TAAS_URL", help="The API's address.")] = None,
    token: Annotated[str | None, typer.Option(envvar="TAAS_TOKEN", help="The key.")] = None,
) -> None:
    """Say which tenant the key in use acts as, at which API, and where the key came from."""
    target = config.resolve(url, token)
    with ApiClient(target.url, target.token) as client:
        me = client.get("/v1/keys/me")
    role = " (admin)" if me["admin"] else ""
    console.print(f"tenant {me['tenant']}{role} at {target.url}; key from {target.source}")
