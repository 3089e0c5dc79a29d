"""Validation on write, the ``FHIR_SERVICE_VALIDATE_ON_WRITE`` setting
(https://hl7.org/fhir/R4/validation.html, status codes of https://hl7.org/fhir/R4/http.html#update).

Every resource version a request stores (create, update, conditional create and
update, the result of a PATCH, each entry of a batch or transaction) is checked by
the application's one ``Validator`` through the unit of work's ``before_write``:

- ``off``: nothing is checked;
- ``warn``: the write happens; the issues are kept for the response (see
  ``WriteCheck.issues_of``) and logged without diagnostics, which may quote content;
- ``reject`` (the default): a resource with an error or fatal issue raises ``NotValid``
  (422) carrying every issue, so the unit of work rolls back: a transaction fails as a
  whole (400, naming the entry), a batch entry fails alone.

A ``meta.profile`` the packages do not hold is an error unless ``unknown_profiles`` is
``warn`` (``FHIR_SERVICE_UNKNOWN_PROFILES``): what cannot be checked is not accepted. An
extension whose definition is not installed is a warning: anyone may define extensions
(https://hl7.org/fhir/R4/extensibility.html), and its content is still walked.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Literal

from fhir_service.errors import Issue, NotValid
from fhir_service.fhir.outcome import operation_outcome
from fhir_service.fhir.package_cache import load_definitions
from fhir_service.validation.engine import Validator, has_errors, validator_for
from fhir_service.validation.options import Options

Mode = Literal["off", "warn", "reject"]
UnknownProfiles = Literal["reject", "warn"]

log = logging.getLogger("fhir_service.api.validation")


class AppValidator:
    """The application's Validator, built once from the package cache on first use."""

    def __init__(self, package_cache: Path) -> None:
        self.package_cache = package_cache
        self._validator: Validator | None = None
        self._lock = threading.Lock()

    def get(self) -> Validator:
        """The Validator (PackageError when the cache holds no FHIR package)."""
        if self._validator is None:
            with self._lock:
                if self._validator is None:
                    self._validator = validator_for(load_definitions(self.package_cache))
        return self._validator


class WriteCheck:
    """The ``before_write`` of one request in ``warn`` or ``reject`` mode. A transaction with
    validation workers runs it there (``spec``: package cache and options) and hands the
    issues to ``receive`` (``storage.repository.WorkerCheck``)."""

    def __init__(
        self,
        validator: Validator,
        mode: Mode,
        unknown_profiles: UnknownProfiles = "reject",
        *,
        log_each: bool = True,
        package_cache: Path | None = None,
    ) -> None:
        self._validator = validator
        self._mode = mode
        self._options = write_options(unknown_profiles)
        self.spec = None if package_cache is None else (package_cache, self._options)
        self._issues: dict[str, list[Issue]] = {}
        self._log_each = log_each
        self.not_valid = 0
        """Resources with errors written anyway (``warn``)."""

    def __call__(self, body: dict[str, Any]) -> None:
        self.receive(body, self._validator.validate_resource(body, self._options))

    def receive(self, body: dict[str, Any], issues: list[Issue]) -> None:
        """Keep, log and judge the issues of ``body`` (raises ``NotValid`` in reject mode)."""
        rtype, id = body.get("resourceType"), body.get("id")
        version = (body.get("meta") or {}).get("versionId")
        self._issues[f"{rtype}/{id}/_history/{version}"] = issues
        if not any(i.severity in ("fatal", "error", "warning") for i in issues):
            return
        if self._log_each:
            _log(f"{rtype}/{id}", issues, self._mode)
        if self._mode == "warn" and has_errors(issues):
            self.not_valid += 1
        if self._mode == "reject" and has_errors(issues):
            errors = sum(i.severity in ("error", "fatal") for i in issues)
            raise NotValid(
                f"{rtype} is not valid: {errors} error(s); nothing was written",
                expression=str(rtype),
                issues=issues,
            )

    def issues_of(self, location: str) -> list[Issue]:
        """The issues of the version written at ``Type/id/_history/n`` (none if unchecked)."""
        return self._issues.get(location, [])

    def annotate(self, bundle: dict[str, Any]) -> dict[str, Any]:
        """A batch- or transaction-response with each written entry's issues in
        ``response.outcome`` (an entry that failed keeps its own outcome)."""
        for entry in bundle.get("entry") or []:
            response = entry.get("response") or {}
            issues = self.issues_of(str(response.get("location")))
            if issues and "outcome" not in response:
                response["outcome"] = operation_outcome(issues)
        return bundle


def write_options(unknown_profiles: UnknownProfiles = "reject") -> Options:
    """The options of validation on write: ``$validate``'s defaults, with a ``meta.profile``
    that is not installed an error unless ``unknown_profiles`` is ``warn``, and an
    extension whose definition is not installed a warning (docs/validation.md)."""
    return Options(
        unknown_profile="error" if unknown_profiles == "reject" else "warning",
        unknown_extension="warning",
    )


def write_check(
    validator: AppValidator,
    mode: Mode | str,
    unknown_profiles: UnknownProfiles | str = "reject",
    *,
    log_each: bool = True,
) -> WriteCheck | None:
    """A fresh ``WriteCheck`` for one request (or one loaded Bundle, one sync page), or
    None when validation on write is off. ``log_each``: log each resource with issues."""
    if mode not in ("warn", "reject"):
        return None
    return WriteCheck(
        validator.get(),
        "warn" if mode == "warn" else "reject",
        "warn" if unknown_profiles == "warn" else "reject",
        log_each=log_each,
        package_cache=validator.package_cache,
    )


def _log(where: str, issues: list[Issue], mode: Mode) -> None:
    counts = {s: sum(i.severity == s for i in issues) for s in ("fatal", "error", "warning")}
    places = "; ".join(f"{i.severity} {i.code} at {','.join(i.expression)}" for i in issues[:20])
    log.warning(
        "validation on write (%s): %s has %d fatal, %d error, %d warning issue(s): %s",
        mode,
        where,
        counts["fatal"],
        counts["error"],
        counts["warning"],
        places,
    )
