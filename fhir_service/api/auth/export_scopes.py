"""Who may start, poll, download and cancel a Bulk Data export
(https://hl7.org/fhir/uv/bulkdata/STU2/export.html,
https://hl7.org/fhir/smart-app-launch/backend-services.html#scopes).

An export runs outside the request, so its access is decided here, on the very
``ExportParams`` the kick-off parsed and the job runs with (query string and POST
``Parameters`` body alike):

- a kick-off needs some ``system/`` read scope; every type it names (``_type``,
  ``_typeFilter``) needs one covering it, else 403;
- without ``_type`` the export is limited to the types the ``system/`` read scopes cover
  (every type for ``system/*``), as the Bulk Data IG lets a server do;
- the job records its owner (``ExportJob.client_id``), the scopes it was started with and the
  token's patient; it reads only what that owner's scope reaches
  (``ExportParams.access_scope``, applied by storage inside every statement);
  status, files and cancel answer 404 to any other client, as if the job did not exist,
  and status and files need the recorded and the current scopes to cover the job's or
  the file's types (403).
"""

from __future__ import annotations

from dataclasses import replace

from fhir_service.api.auth.context import AccessContext
from fhir_service.errors import Forbidden
from fhir_service.export.kind import ExportJob
from fhir_service.export.params import ExportParams
from fhir_service.fhir.smart_scopes import ScopeSet

ALL = "*"


def readable_types(scopes: ScopeSet | None) -> frozenset[str] | None:
    """The types ``system/`` scopes grant read on; None for every type."""
    if scopes is None:
        return None
    types = set()
    for scope in scopes.scopes:
        if scope.context == "system" and "r" in scope.actions:
            if scope.resource_type == ALL:
                return None
            types.add(scope.resource_type)
    return frozenset(types)


def _covered(readable: frozenset[str] | None, types: list[str]) -> bool:
    return readable is None or all(t in readable for t in types)


def require_export_scope(access: AccessContext) -> None:
    """Any ``$export`` needs at least one ``system/`` read scope."""
    if readable_types(access.scopes) == frozenset():
        raise Forbidden("$export needs a system/ read scope")


def authorize_kick_off(access: AccessContext, params: ExportParams) -> ExportParams:
    """``params`` as the job will run them: types limited to the client's ``system/`` read
    scopes when ``_type`` is absent, the granted scopes and the token's patient recorded
    (the job's access scope); Forbidden when a
    named type is not covered."""
    require_export_scope(access)
    readable = readable_types(access.scopes)
    named = set(params.types or []) | set(params.type_filters or {})
    refused = sorted(t for t in named if not _covered(readable, [t]))
    if refused:
        raise Forbidden(f"$export of {', '.join(refused)} needs a system/ read scope for it")
    types = params.types
    if types is None and readable is not None:
        types = sorted(readable)
    scopes = access.scopes.texts() if access.scopes is not None else None
    return replace(params, types=types, scopes=scopes, owner_patient=access.patient)


def own_job(access: AccessContext, job: ExportJob | None) -> ExportJob | None:
    """The job when ``access`` is its owner and it is not cancelled, else None (404)."""
    if job is None or job.client_id != access.client_id or job.status == "cancelled":
        return None
    return job


def job_types(job: ExportJob) -> list[str]:
    return list(job.params.types) if job.params.types is not None else [ALL]


def file_types(job: ExportJob, name: str) -> list[str] | None:
    """The types a file of the job may hold (a ``deleted`` file: any of the job's);
    None when the job has no such file."""
    for item in job.output.get("output", []):
        if item.get("name") == name:
            return [str(item["type"])]
    if any(item.get("name") == name for item in job.output.get("deleted", [])):
        return job_types(job)
    return None


def require_job_scopes(access: AccessContext, job: ExportJob, types: list[str], what: str) -> None:
    """The scopes the job was started with and the request's scopes must both cover
    ``types`` (the scopes of a still-valid token: the middleware checked it)."""
    recorded = ScopeSet.parse(job.params.scopes) if job.params.scopes is not None else None
    for scopes in (recorded, access.scopes):
        if not _covered(readable_types(scopes), types):
            raise Forbidden(f"The access token's scopes do not cover {what}")
