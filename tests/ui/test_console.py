"""The OpenAPI console works offline: /docs and /redoc render from the package, make no
request off the machine, and /docs' Authorize and the seed example run a real job."""

from tests.ui.conftest import Stack, Tab


def test_swagger_ui_renders_offline_authorizes_and_runs_the_seed_job(
    stack: Stack, tab: Tab
) -> None:
    page = tab.page
    page.goto(f"{stack.url}/docs")
    page.locator(".opblock").first.wait_for()
    assert page.locator(".opblock").count() > 10

    page.locator("button.authorize").first.click()
    page.locator(".auth-container input").first.fill(stack.keys["alice"])
    page.locator(".auth-container button.authorize").first.click()
    page.locator("button.btn-done").first.click()

    submit = page.locator(".opblock-post").filter(
        has=page.locator('.opblock-summary-path[data-path="/v1/jobs"]')
    )
    submit.locator(".opblock-summary").click()
    submit.locator("button.try-out__btn").click()
    submit.locator("button.execute").click()
    status = submit.locator(".live-responses-table .response .response-col_status").first
    status.wait_for()
    assert status.inner_text().strip() == "201"

    with stack.client("alice") as alice:
        jobs = alice.get("/v1/jobs").json()["items"]
    assert [job["name"] for job in jobs] == ["mnist-mlp"]
    assert tab.requests.elsewhere == []
    assert any(
        url.endswith("/ui/vendor/swagger-ui-dist/swagger-ui-bundle.js")
        for url in tab.requests.local
    )


def test_redoc_renders_offline_with_the_streams_described(stack: Stack, tab: Tab) -> None:
    page = tab.page
    response = page.goto(f"{stack.url}/redoc")
    assert response is not None
    assert "img-src 'self' data:" in response.headers["content-security-policy"]
    page.get_by_text("taas.bearer").first.wait_for()
    page.locator("[data-section-id^='tag/jobs']").first.wait_for()
    # ReDoc asks for its logo from its CDN on every page; the CSP stops it in the browser.
    assert tab.requests.elsewhere == []
    assert any(url.endswith("/ui/vendor/redoc/redoc.standalone.js") for url in tab.requests.local)
