"""The OpenAPI console (/docs, /redoc) and the dashboard (/), served from files in the
package: nothing the pages load comes from another host, so they work offline.

The third-party files under vendor/ come from their npm packages, pinned and checked by
scripts/refresh_ui_vendor.py (versions.json says which).
"""

import base64
import hashlib
import re
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
VENDOR = HERE / "vendor"
FAVICON = "/ui/vendor/swagger-ui-dist/favicon-32x32.png"
INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)

# img-src keeps ReDoc's logo (which it always fetches from its CDN) inside the browser;
# ReDoc injects its styles and runs its search in a blob: worker.
CONSOLE_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
# The dashboard: no inline script at all, and nothing from another host.
DASHBOARD_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'none'"
)

ui_router = APIRouter(include_in_schema=False)


def with_policy(page: HTMLResponse, policy: str) -> HTMLResponse:
    """The page with its CSP: the console's own inline start-up script allowed by hash."""
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in INLINE_SCRIPT.findall(bytes(page.body).decode())
    ]
    script_src = "script-src 'self' " + " ".join(hashes)
    page.headers["Content-Security-Policy"] = f"{policy}; {script_src}".strip()
    page.headers["X-Content-Type-Options"] = "nosniff"
    page.headers["Referrer-Policy"] = "no-referrer"
    return page


@ui_router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    page = get_swagger_ui_html(
        openapi_url=request.app.openapi_url,
        title=f"{request.app.title} - API console",
        swagger_js_url="/ui/vendor/swagger-ui-dist/swagger-ui-bundle.js",
        swagger_css_url="/ui/vendor/swagger-ui-dist/swagger-ui.css",
        swagger_favicon_url=FAVICON,
        # No validator badge: it would send the whole document to validator.swagger.io.
        swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": False},
    )
    return with_policy(page, CONSOLE_POLICY)


@ui_router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    page = get_redoc_html(
        openapi_url=request.app.openapi_url,
        title=f"{request.app.title} - API reference",
        redoc_js_url="/ui/vendor/redoc/redoc.standalone.js",
        redoc_favicon_url=FAVICON,
        with_google_fonts=False,
    )
    return with_policy(page, CONSOLE_POLICY)


@ui_router.get("/")
def dashboard() -> FileResponse:
    """The dashboard's one page; its modules find their way by the URL's #fragment."""
    return FileResponse(
        STATIC / "index.html",
        headers={
            "Content-Security-Policy": DASHBOARD_POLICY,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-cache",
        },
    )


def install_ui(app: FastAPI) -> None:
    """The pages, and the files they load (a router cannot carry mounts into an app)."""
    app.include_router(ui_router)
    app.mount("/ui/vendor", StaticFiles(directory=VENDOR), name="ui-vendor")
    app.mount("/ui", StaticFiles(directory=STATIC), name="ui")
