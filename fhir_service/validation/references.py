"""References: target types, contained resources, and resolution inside Bundles.

- The type a reference points to must be one of the element's target profiles
  (https://hl7.org/fhir/R4/references.html#Reference).
- A local reference ``#id`` must name a contained resource, and every contained
  resource must be referenced from its container or refer to it (dom-3,
  https://hl7.org/fhir/R4/references.html#contained).
- Inside a Bundle (https://hl7.org/fhir/R4/bundle.html#references): fullUrls are
  absolute and agree with the resource id; ``urn:uuid:`` references resolve to
  an entry (an error in a transaction or batch, where the server could not
  resolve them either; a warning elsewhere, as the HL7 validator does);
  relative and absolute references that match several entries are errors;
  searchset bundles have a self link and search modes.
"""

from __future__ import annotations

import re
from typing import Any

from fhir_service.errors import Issue
from fhir_service.validation.elements import ModelIndex
from fhir_service.validation.json_syntax import Finding
from fhir_service.validation.options import Options
from fhir_service.validation.structure import ReferenceSite, ResourceSite

_ABSOLUTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
_RELATIVE = re.compile(
    r"^(?:(?P<base>.*)/)?(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})"
    r"(?:/_history/(?P<version>[A-Za-z0-9\-.]{1,64}))?$"
)


def _entries(site: ResourceSite) -> list[dict[str, Any]]:
    return _bundle_index(site)[0]


def _by_full_url(site: ResourceSite, url: str) -> list[dict[str, Any]]:
    return _bundle_index(site)[1].get(url, [])


def _bundle_index(
    site: ResourceSite,
) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """The entries of the Bundle around a resource, and those entries by fullUrl (kept)."""
    scope = site.root.bundle
    if scope is None:
        return [], {}
    if scope.index is None:
        entries = [e for e in scope.bundle.get("entry") or [] if isinstance(e, dict)]
        by_url: dict[str, list[dict[str, Any]]] = {}
        for e in entries:
            if isinstance(e.get("fullUrl"), str):
                by_url.setdefault(e["fullUrl"], []).append(e)
        scope.index = (entries, by_url)
    return scope.index


def _find(msg: str, severity: str, code: str, site: ReferenceSite) -> Finding:
    return Finding(Issue(severity, code, msg, [site.path]), site.ptr)


class ReferenceChecker:
    """Checks the references and Bundle rules found by one structure walk."""

    def __init__(self, index: ModelIndex, options: Options) -> None:
        self.index = index
        self.options = options

    def check(self, refs: list[ReferenceSite], resources: list[ResourceSite]) -> list[Finding]:
        findings: list[Finding] = []
        by_type_id: dict[tuple[str, str], int] = {}
        for res in resources:
            rid = res.value.get("id")
            if isinstance(rid, str):
                key = (res.rtype, rid)
                by_type_id[key] = by_type_id.get(key, 0) + 1
        by_root: dict[int, list[ReferenceSite]] = {}
        for ref in refs:
            findings.extend(self.reference(ref, by_type_id))
            by_root.setdefault(id(ref.resource.root), []).append(ref)
        for res in resources:
            findings.extend(self.contained(res, by_root.get(id(res), [])))
            if res.rtype == "Bundle":
                findings.extend(self.bundle(res))
        return findings

    # -- one reference -------------------------------------------------------------------

    def reference(
        self, site: ReferenceSite, by_type_id: dict[tuple[str, str], int]
    ) -> list[Finding]:
        ref = site.value.get("reference")
        if not isinstance(ref, str) or not ref:
            return []
        out: list[Finding] = []
        target_type: str | None = None
        in_bundle = site.resource.root.bundle is not None
        if ref.startswith("#"):
            target = _contained(site.resource.root.value, ref[1:])
            if target is None:
                out.append(
                    _find(
                        f"Unable to resolve resource with reference '{ref}'",
                        "error",
                        "structure",
                        site,
                    )
                )
            else:
                target_type = str(target.get("resourceType"))
        elif ref.startswith(("urn:uuid:", "urn:oid:")):
            matches = _by_full_url(site.resource, ref)
            if matches:
                res = matches[0].get("resource")
                target_type = res.get("resourceType") if isinstance(res, dict) else None
            elif in_bundle:
                btype = (site.resource.root.bundle or _NO).bundle.get("type")
                severity = "error" if btype in ("transaction", "batch") else "warning"
                out.append(
                    _find(
                        f"URN reference is not locally contained within the bundle {ref}",
                        severity,
                        "not-found",
                        site,
                    )
                )
        else:
            target_type, found = self._bundle_target(site, ref)
            if found is not None:
                out.extend(found)
            if target_type is None:
                m = _RELATIVE.match(ref.split("?", 1)[0]) if "?" not in ref else None
                if m:
                    target_type = m.group("type")
                elif "?" in ref:
                    target_type = ref.split("?", 1)[0].rsplit("/", 1)[-1] or None
                if (
                    self.options.check_references
                    and m
                    and not m.group("base")
                    and not in_bundle
                    and by_type_id.get((m.group("type"), m.group("id")), 0) == 0
                ):
                    out.append(
                        _find(
                            f"Unable to resolve resource with reference '{ref}'",
                            "error",
                            "structure",
                            site,
                        )
                    )
        if (
            target_type
            and site.targets
            and "Resource" not in site.targets
            and target_type not in site.targets
            and self.index.is_resource(target_type)
        ):
            out.append(
                _find(
                    f"The type '{target_type}' implied by the reference URL {ref} is not a "
                    f"valid Target for this element (must be one of {list(site.targets)})",
                    "error",
                    "structure",
                    site,
                )
            )
        return out

    def _bundle_target(
        self, site: ReferenceSite, ref: str
    ) -> tuple[str | None, list[Finding] | None]:
        """The type of the Bundle entry a relative or absolute reference resolves to."""
        entries = _entries(site.resource)
        if not entries:
            return None, None
        if _ABSOLUTE.match(ref):
            matches = _by_full_url(site.resource, ref)
        else:
            m = _RELATIVE.match(ref)
            if not m:
                return None, None
            own = site.resource.root.full_url or ""
            base_m = _RELATIVE.match(own) if _ABSOLUTE.match(own) else None
            if base_m is None or not base_m.group("base"):
                return None, None
            wanted = f"{base_m.group('base')}/{m.group('type')}/{m.group('id')}"
            matches = _by_full_url(site.resource, wanted)
        version = m.group("version") if (m := _RELATIVE.match(ref)) else None
        if version is not None and matches:
            exact = [e for e in matches if str(_version_of(e.get("resource"))) == version]
            if not exact:
                return None, [
                    _find(
                        f"Can't find '{ref}' in the bundle: {len(matches)} entries have its "
                        f"type and id, but none has version {version}",
                        "error",
                        "not-found",
                        site,
                    )
                ]
            matches = exact
        if len(matches) > 1:
            versions = {str(_version_of(e.get("resource"))) for e in matches}
            if len(versions) != len(matches) or "/_history/" not in ref:
                return None, [
                    _find(
                        f"Multiple matches in bundle for reference {ref}",
                        "error",
                        "forbidden",
                        site,
                    )
                ]
        if not matches:
            return None, None
        res = matches[0].get("resource")
        return (res.get("resourceType") if isinstance(res, dict) else None), None

    # -- contained resources -------------------------------------------------------------

    def contained(self, res: ResourceSite, refs: list[ReferenceSite]) -> list[Finding]:
        contained = res.value.get("contained")
        if not self.options.validate_contained:
            return []
        if res.container is not None or not isinstance(contained, list) or not contained:
            return []
        local = {
            r.value.get("reference")
            for r in refs
            if r.resource.root is res and isinstance(r.value.get("reference"), str)
        }
        text = _all_strings(res.value)
        out: list[Finding] = []
        for i, item in enumerate(contained):
            if not isinstance(item, dict):
                continue
            cid = item.get("id")
            if not isinstance(cid, str):
                continue
            if f"#{cid}" in local or f"#{cid}" in text:
                continue
            inner = {r.value.get("reference") for r in refs if r.resource.value is item}
            if "#" in inner:
                continue
            rtype = item.get("resourceType")
            out.append(
                Finding(
                    Issue(
                        "error",
                        "invalid",
                        f"The contained resource '{cid}' is not referenced to from elsewhere in "
                        "the containing resource nor does it refer to the containing resource "
                        f"(dom-3, {rtype}/{cid})",
                        [f"{res.child_path}.contained[{i}]"],
                    ),
                    (*res.ptr, "contained", i),
                )
            )
        return out

    # -- Bundle rules --------------------------------------------------------------------

    def bundle(self, res: ResourceSite) -> list[Finding]:
        bundle = res.value
        out: list[Finding] = []
        entries = bundle.get("entry")
        entries = entries if isinstance(entries, list) else []
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                continue
            path, ptr = f"{res.child_path}.entry[{i}]", (*res.ptr, "entry", i)
            full_url = entry.get("fullUrl")
            resource = entry.get("resource") if isinstance(entry.get("resource"), dict) else None
            if isinstance(full_url, str):
                if not _ABSOLUTE.match(full_url):
                    out.append(
                        Finding(
                            Issue(
                                "error",
                                "invalid",
                                f"The fullUrl must be an absolute URL (not '{full_url}')",
                                [path],
                            ),
                            ptr,
                        )
                    )
                elif resource is not None and not full_url.startswith("urn:"):
                    m = _RELATIVE.match(full_url)
                    rid = resource.get("id")
                    if (
                        m
                        and isinstance(rid, str)
                        and (
                            m.group("id") != rid or m.group("type") != resource.get("resourceType")
                        )
                    ):
                        out.append(
                            Finding(
                                Issue(
                                    "error",
                                    "invalid",
                                    f"The fullUrl '{full_url}' does not match the type and id "
                                    f"of the resource ({resource.get('resourceType')}/{rid})",
                                    [path],
                                ),
                                ptr,
                            )
                        )
        if bundle.get("type") == "searchset":
            link = bundle.get("link")
            links = link if isinstance(link, list) else []
            if not any(isinstance(li, dict) and li.get("relation") == "self" for li in links):
                out.append(
                    Finding(
                        Issue(
                            "warning",
                            "invalid",
                            "SearchSet Bundles should have a self link that specifies what the "
                            "search was",
                            [res.path],
                        ),
                        res.ptr,
                    )
                )
            if any(
                isinstance(e, dict) and not (e.get("search") or {}).get("mode") for e in entries
            ):
                out.append(
                    Finding(
                        Issue(
                            "warning",
                            "invalid",
                            "SearchSet bundles should have search modes on the entries",
                            [res.path],
                        ),
                        res.ptr,
                    )
                )
        return out


class _NoScope:
    bundle: dict[str, Any] = {}


_NO = _NoScope()


def _version_of(resource: Any) -> Any:
    meta = resource.get("meta") if isinstance(resource, dict) else None
    return meta.get("versionId") if isinstance(meta, dict) else None


def _contained(resource: dict[str, Any], cid: str) -> dict[str, Any] | None:
    items = resource.get("contained")
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and item.get("id") == cid:
            return item
    return None


def _all_strings(value: Any) -> set[str]:
    """Every string value in a resource except inside contained resources (canonicals, uris)."""
    found: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(v for k, v in item.items() if k != "contained")
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and item.startswith("#"):
            found.add(item)
    return found
