"""The one place the `taas` command talks HTTP to the API: every client command goes
through `ApiClient`, which turns transport failures and error answers into `CliError`s
that read as sentences (a later typed public client grows from this module)."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx

from app.cli.errors import CliError

TIMEOUT_S = 60.0
# Error answers can carry many details; show them all, but keep each one readable.
MAX_DETAIL_CHARS = 300


class ApiError(CliError):
    """The API answered with an error: its status, code, message and every detail."""

    def __init__(self, status: int, code: str, message: str, details: list[str]) -> None:
        self.status, self.code, self.details = status, code, details
        text = f"{status} {code}: {message}"
        if details:
            text += "\n  " + "; ".join(details)
        super().__init__(text)


def _detail(item: Any) -> str:
    if isinstance(item, dict) and "message" in item:
        field = item.get("field") or item.get("loc")
        text = f"{field}: {item['message']}" if field else str(item["message"])
    else:
        text = json.dumps(item) if not isinstance(item, str) else item
    return text if len(text) <= MAX_DETAIL_CHARS else text[: MAX_DETAIL_CHARS - 3] + "..."


def api_error(response: httpx.Response) -> ApiError:
    """The `ApiError` an error response stands for, whatever shape its body has."""
    try:
        error = response.json()["error"]
        details = error.get("details") or []
        return ApiError(
            response.status_code,
            str(error["code"]),
            str(error["message"]),
            [_detail(d) for d in details] if isinstance(details, list) else [_detail(details)],
        )
    except (ValueError, KeyError, TypeError):
        text = " ".join(response.text.split())[:MAX_DETAIL_CHARS] or response.reason_phrase
        return ApiError(response.status_code, "error", text, [])


class ApiClient:
    """An authenticated connection to one taas API."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self._http = httpx.Client(base_url=self.url, timeout=TIMEOUT_S, headers=self.headers)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http")

    def __enter__(self) -> "ApiClient":
        return self

    def __exit__(self, *_: object) -> None:
        self._http.close()

    def unreachable(self, error: Exception) -> CliError:
        return CliError(
            f"cannot reach the taas API at {self.url} ({type(error).__name__}): start it with"
            " `taas up` (or `make run`), or point --url / TAAS_URL at a running one"
        )

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; an error answer raises `ApiError`, no answer raises `CliError`."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as error:
            raise self.unreachable(error) from error
        if not response.is_success:
            if response.status_code == 401:
                raise self._unauthorized(api_error(response))
            raise api_error(response)
        return response

    def _unauthorized(self, error: ApiError) -> ApiError:
        hint = (
            "no key was sent: run `taas login`, or set TAAS_TOKEN"
            if not self.token
            else "the key was refused: run `taas login` again, or check TAAS_TOKEN"
        )
        error.args = (f"{error.args[0]}\n  {hint} (for {self.url})",)
        return error

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        return None if response.status_code == 204 else response.json()

    def get(self, path: str, **params: Any) -> Any:
        return self.json("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: Any = None) -> Any:
        return self.json("POST", path, json=body)

    def delete(self, path: str) -> None:
        self.request("DELETE", path)

    def upload(self, path: str, form: dict[str, str], files: dict[str, Path]) -> Any:
        """A multipart upload of local files (opened here, closed before returning)."""
        opened: dict[str, tuple[str, IO[bytes]]] = {}
        try:
            for field, file in files.items():
                opened[field] = (file.name, file.open("rb"))
            return self.json("POST", path, data=form, files=opened)
        finally:
            for _, handle in opened.values():
                handle.close()

    def download(self, path: str, output: Path) -> str | None:
        """Stream a file to `output`; returns its sha256 as the API states it."""
        try:
            with self._http.stream("GET", path) as response:
                if not response.is_success:
                    response.read()
                    raise api_error(response)
                with output.open("wb") as file:
                    for chunk in response.iter_bytes():
                        file.write(chunk)
                checksum: str | None = response.headers.get("x-checksum-sha256")
                return checksum
        except httpx.TransportError as error:
            raise self.unreachable(error) from error

    def events(self, job_id: str, after: int) -> Iterator[dict[str, Any]]:
        """A job's stored events after `after`, every page."""
        while True:
            page = self.get(f"/v1/jobs/{job_id}/events", after=after)
            yield from page["items"]
            if page["next_cursor"] is None:
                return
            after = page["next_cursor"]

    def dataset_id(self, name_or_id: str) -> str:
        """A dataset id as given, or the newest of this tenant's datasets with that name."""
        if name_or_id.startswith("ds_") or name_or_id == "synthetic":
            return name_or_id
        cursor = None
        while True:
            page = self.get("/v1/datasets", cursor=cursor, limit=200)
            for dataset in page["items"]:
                if dataset["name"] == name_or_id:
                    return str(dataset["id"])
            if (cursor := page["next_cursor"]) is None:
                raise CliError(f"no dataset named {name_or_id!r}: `taas datasets list` shows yours")
