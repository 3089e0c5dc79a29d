"""Helpers shared by push and pull: comparable content, versions from ETags, outcomes of entries.

https://hl7.org/fhir/R4/http.html#versioning (ETag ``W/"<versionId>"``) and
https://hl7.org/fhir/R4/bundle.html#transaction-response (``entry.response``).
"""

from __future__ import annotations

import re
from typing import Any

_ETAG = re.compile(r'^(?:W/)?"?([^"]*)"?$')
_SERVER_META = ("versionId", "lastUpdated", "source")


def strip_server_meta(body: dict[str, Any]) -> dict[str, Any]:
    """A copy without the meta elements a server sets (versionId, lastUpdated, source)."""
    out = dict(body)
    meta = {k: v for k, v in (body.get("meta") or {}).items() if k not in _SERVER_META}
    if meta:
        out["meta"] = meta
    else:
        out.pop("meta", None)
    return out


def same_content(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal apart from id and meta: what a sync must carry across unchanged."""
    return {k: v for k, v in a.items() if k not in ("id", "meta")} == {
        k: v for k, v in b.items() if k not in ("id", "meta")
    }


def version_from_etag(etag: str | None) -> str | None:
    if not etag:
        return None
    match = _ETAG.match(etag.strip())
    return match.group(1) if match and match.group(1) else None


def etag_of(version: str) -> str:
    return f'W/"{version}"'


def entry_status(entry: dict[str, Any]) -> int:
    """The numeric status of a batch/transaction response entry (``"201 Created"`` -> 201)."""
    text = str((entry.get("response") or {}).get("status") or "0").strip()
    head = text.split(" ", 1)[0]
    return int(head) if head.isdigit() else 0


def entry_version(entry: dict[str, Any]) -> str | None:
    """The new version of a response entry: its etag, its resource's meta, or its location."""
    response = entry.get("response") or {}
    version = version_from_etag(response.get("etag"))
    if version:
        return version
    resource = entry.get("resource") or {}
    version = (resource.get("meta") or {}).get("versionId")
    if version:
        return str(version)
    location = str(response.get("location") or "")
    if "/_history/" in location:
        return location.rsplit("/_history/", 1)[1]
    return None


def entry_id(entry: dict[str, Any]) -> str | None:
    """The resource id a response entry names (resource.id, else from location)."""
    resource = entry.get("resource") or {}
    if resource.get("id"):
        return str(resource["id"])
    location = str((entry.get("response") or {}).get("location") or "")
    parts = location.split("/_history/")[0].rstrip("/").split("/")
    return parts[-1] if len(parts) >= 2 else None
