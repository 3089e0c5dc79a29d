"""`/docs` (Swagger UI) works offline: its files come from the app, never from a CDN;
`/` leads to `/ui`."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.ui.conftest import Watched


def test_swagger_ui_renders_with_every_request_to_the_app_only(
    served_case: str, laptop: Watched
) -> None:
    outside: list[str] = []

    def guard(route: Any) -> None:
        url = route.request.url
        if url.startswith(served_case):
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    laptop.page.route("**/*", guard)
    laptop.page.goto(f"{served_case}/docs")
    title = laptop.page.locator(".swagger-ui .info .title")
    title.wait_for(timeout=30_000)
    text = title.inner_text()
    assert "fhir-service" in text
    assert "OAS 3.1" in text  # the Swagger UI of the package reads OpenAPI 3.1
    # An operation of the FHIR API is listed, so /openapi.json was read and rendered.
    assert laptop.page.locator(".opblock").count() > 10
    assert outside == []
    assert laptop.script_errors() == []


def test_docs_html_names_only_local_assets(served_case: str) -> None:
    html = httpx.get(f"{served_case}/docs").text
    urls = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", html)
    assert urls, html
    for url in urls:
        assert url.startswith("/"), url
        assert httpx.get(f"{served_case}{url}").status_code == 200, url
    assert httpx.get(f"{served_case}/docs/assets/nothing.js").status_code == 404


def test_the_root_leads_to_the_ui(served_case: str) -> None:
    response = httpx.get(f"{served_case}/")
    assert response.status_code == 307
    assert response.headers["location"] == "/ui"
    assert httpx.get(f"{served_case}/", follow_redirects=True).status_code == 200
