"""The interactive API documentation at ``/docs`` (Swagger UI over ``/openapi.json``),
served without any external request: the Swagger UI script, style sheet and icon come
from the installed Python package fastapi-offline (its ``static/`` folder), at
``/docs/assets/<name>``. ``GET /`` leads to the web view at ``/ui``.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import HTMLResponse, RedirectResponse, Response

from fhir_service.errors import NotFound

ASSET_PACKAGE = "fastapi_offline"
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon.png": "image/png",
}

router = APIRouter(include_in_schema=False)


@cache
def read_asset(name: str) -> bytes:
    """The bytes of one Swagger UI file of the asset package."""
    return resources.files(ASSET_PACKAGE).joinpath("static", name).read_bytes()


@router.get("/", response_class=RedirectResponse)
async def root() -> RedirectResponse:
    """The service root leads a person to the web view."""
    return RedirectResponse("/ui", status_code=307)


@router.get("/docs", response_class=HTMLResponse)
async def swagger_ui() -> HTMLResponse:
    """Swagger UI for ``/openapi.json``, with its files from ``/docs/assets``."""
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="fhir-service API",
        swagger_js_url="/docs/assets/swagger-ui-bundle.js",
        swagger_css_url="/docs/assets/swagger-ui.css",
        swagger_favicon_url="/docs/assets/favicon.png",
    )


@router.get("/docs/assets/{name}")
async def asset(name: str) -> Response:
    """One Swagger UI file; any other name is a 404."""
    media_type = ASSETS.get(name)
    if media_type is None:
        raise NotFound(f"No documentation asset named {name!r}")
    headers = {"Cache-Control": "public, max-age=86400"}
    return Response(read_asset(name), media_type=media_type, headers=headers)
