"""Routes of ``/ui``: HTML shells rendered with Jinja2 and their static assets.

Each page carries a strict Content-Security-Policy allowing only this origin
(scripts, styles, ``fetch``), so the pages make no external request
(https://www.w3.org/TR/CSP3/).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from fhir_service.api.deps import BASE_PATH, IdDep
from fhir_service.api.ui.assets import read_asset

router = APIRouter(prefix="/ui", include_in_schema=False)

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
NAVIGATION = (
    ("patients", "/ui", "Patients"),
    ("validate", "/ui/validate", "Validate"),
    ("status", "/ui/status", "Status"),
)


def _page(request: Request, template: str, active: str, **context: Any) -> HTMLResponse:
    response = TEMPLATES.TemplateResponse(
        request,
        template,
        {
            "fhir_base": BASE_PATH,
            "navigation": NAVIGATION,
            "active": active,
            "smart": request.app.state.settings.auth_mode == "smart",
            **context,
        },
    )
    response.headers["content-security-policy"] = PAGE_POLICY
    response.headers["cache-control"] = "no-store"
    return response


@router.get("", response_class=HTMLResponse)
async def patients_page(request: Request) -> HTMLResponse:
    """The patients held by the server, each linking to its timeline."""
    return _page(request, "patients.html", "patients", title="Patients")


@router.get("/", response_class=RedirectResponse)
async def patients_slash() -> RedirectResponse:
    return RedirectResponse("/ui", status_code=308)


@router.get("/patients/{id}", response_class=HTMLResponse)
async def timeline_page(request: Request, id: IdDep) -> HTMLResponse:
    """One patient's course as a timeline."""
    return _page(request, "timeline.html", "patients", title="Timeline", patient_id=id)


@router.get("/validate", response_class=HTMLResponse)
async def validate_page(request: Request) -> HTMLResponse:
    """Paste or upload a resource or Bundle and see the issues of ``$validate``."""
    return _page(request, "validate.html", "validate", title="Validate")


@router.get("/status", response_class=HTMLResponse)
async def status_page(request: Request) -> HTMLResponse:
    """Recent sync runs and the jobs of every kind (export, reindex, sync)."""
    return _page(request, "status.html", "status", title="Status")


@router.get("/static/{name}")
async def asset(name: str) -> Response:
    """A script or style sheet of the pages."""
    data, media_type = read_asset(name)
    return Response(data, media_type=media_type, headers={"cache-control": "no-cache"})
