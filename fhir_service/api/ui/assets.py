"""The pages' own scripts and style sheet, served from the package (no external requests).

Only files present in ``static/`` are served; anything else is a 404 with an
OperationOutcome (https://hl7.org/fhir/R4/operationoutcome.html).
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from fhir_service.errors import NotFound

MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


@cache
def asset_names() -> frozenset[str]:
    """The names of the files in ``static/``."""
    folder = resources.files(__package__).joinpath("static")
    return frozenset(item.name for item in folder.iterdir() if item.is_file())


def read_asset(name: str) -> tuple[bytes, str]:
    """The bytes and media type of the static file ``name``."""
    suffix = name[name.rfind(".") :] if "." in name else ""
    if name not in asset_names() or suffix not in MEDIA_TYPES:
        raise NotFound(f"No UI asset named {name!r}")
    data = resources.files(__package__).joinpath("static", name).read_bytes()
    return data, MEDIA_TYPES[suffix]
