"""Structure of a resource against the core definitions: one walk over the JSON.

Checks (https://hl7.org/fhir/R4/json.html, https://hl7.org/fhir/R4/elementdefinition.html):
unknown properties, arrays where the definition repeats and single values where
it does not, empty arrays and objects, cardinality, choice types, primitive
formats, primitive extensions (``_name``), extension definitions and their
context (https://hl7.org/fhir/R4/extensibility.html), attachment sizes, and
core terminology bindings. On the way it collects what the invariant and
reference checks need: each element instance with constraints, each
Reference, and each resource (contained, Bundle entries, Parameters).

Locations follow the HL7 validator: ``Patient.name[0].given[0]``,
``Observation.value.ofType(Quantity)``, and a nested resource's children as
``Bundle.entry[0].resource/*Patient/p1*/.name[0]``.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any

from fhir_service.errors import Issue
from fhir_service.validation.bindings import BindingChecker
from fhir_service.validation.elements import Constraint, ElementInfo, ModelIndex, TypeModel
from fhir_service.validation.json_syntax import Finding, Pointer
from fhir_service.validation.options import Options
from fhir_service.validation.primitives import check_primitive
from fhir_service.validation.snapshot_gen import with_snapshot
from fhir_service.validation.xhtml import html_problems

_EXAMPLE_URL = re.compile(r"^https?://([^/]+\.)?example\.(org|com|net)(/|$)")
_HTML_TAG = re.compile(r"<\s*/?\s*[a-zA-Z][a-zA-Z0-9]*(\s[^>]*)?/?>")
_EMPTY_ARRAY = "Array cannot be empty - the property should not be present if it has no values"
_EXT_ALLOWED = frozenset({"id", "extension"})
_CROSS_VERSION = re.compile(
    r"^http://hl7\.org/fhir/(1\.0|3\.0|4\.0|4\.3|5\.0)/StructureDefinition/extension-[A-Z][A-Za-z]*(\.[A-Za-z\[\]]+)*$"
)
"""Extensions for converting between versions (https://hl7.org/fhir/R4/versions.html#extensions)."""


# Extension spaces of HL7's own extension and tooling packages
# (https://hl7.org/fhir/R4/extensibility-registry.html).
_HL7_EXTENSION_SPACES = (
    "http://hl7.org/fhir/StructureDefinition/",
    "http://hl7.org/fhir/tools/StructureDefinition/",
)
_ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_CANONICAL_CONTEXTS = frozenset({"CanonicalResource", "MetadataResource"})
_CANONICAL_ELEMENTS = ("url", "version", "name", "status")
_CANONICAL_TYPES: dict[str, bool] = {}  # R4 resource types: the same for every index


@dataclass
class BundleScope:
    """A Bundle whose entries references may resolve to."""

    bundle: dict[str, Any]
    path: str
    ptr: Pointer
    index: tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]] | None = None


@dataclass
class ResourceSite:
    """One resource met on the walk: top level, contained, Bundle entry or parameter."""

    value: dict[str, Any]
    rtype: str
    path: str
    child_path: str
    ptr: Pointer
    container: ResourceSite | None = None
    bundle: BundleScope | None = None
    entry_index: int | None = None
    full_url: str | None = None

    @property
    def root(self) -> ResourceSite:
        return self.container.root if self.container is not None else self


@dataclass
class InvariantSite:
    """Constraints to evaluate on one element instance."""

    constraints: tuple[Constraint, ...]
    value: Any
    type_path: str
    path: str
    ptr: Pointer
    resource: ResourceSite


@dataclass
class ReferenceSite:
    """One Reference value and the targets its element allows."""

    value: dict[str, Any]
    targets: tuple[str, ...]
    path: str
    ptr: Pointer
    resource: ResourceSite


@dataclass
class WalkResult:
    findings: list[Finding] = field(default_factory=list)
    invariants: list[InvariantSite] = field(default_factory=list)
    references: list[ReferenceSite] = field(default_factory=list)
    resources: list[ResourceSite] = field(default_factory=list)


def _label(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "a primitive value"


class StructureWalker:
    """Walks one resource tree against the compiled core type models."""

    def __init__(self, index: ModelIndex, bindings: BindingChecker, options: Options) -> None:
        self.index = index
        self.bindings = bindings
        self.options = options
        self.out = WalkResult()
        self._unbound: set[str] = set()
        self._regex: dict[str, str | None] = {}

    # -- results -------------------------------------------------------------------------

    def add(self, severity: str, code: str, text: str, path: str, ptr: Pointer) -> None:
        self.out.findings.append(Finding(Issue(severity, code, text, [path]), ptr))

    def walk(self, resource: Any) -> WalkResult:
        if not isinstance(resource, dict):
            self.add("fatal", "structure", "The JSON is not an object with a resourceType", "$", ())
            return self.out
        self.resource(resource, None, (), None)
        return self.out

    # -- resources -----------------------------------------------------------------------

    def resource(
        self,
        value: dict[str, Any],
        path: str | None,
        ptr: Pointer,
        container: ResourceSite | None,
        bundle: BundleScope | None = None,
        entry_index: int | None = None,
        full_url: str | None = None,
    ) -> ResourceSite | None:
        rtype = value.get("resourceType")
        where = path or "$"
        if not isinstance(rtype, str):
            # The HL7 JSON parser stops there: fatal (https://hl7.org/fhir/R4/json.html#resources)
            self.add("fatal", "structure", "Unable to find resourceType property", where, ptr)
            return None
        model = self.index.model(rtype)
        if model is None or model.kind != "resource":
            self.add("error", "structure", f"Unknown resource type '{rtype}'", where, ptr)
            return None
        if path is None:
            path = child_path = rtype
        else:
            rid = value.get("id")
            child_path = f"{path}/*{rtype}/{rid if isinstance(rid, str) else 'null'}*/"
        site = ResourceSite(
            value, rtype, path, child_path, ptr, container, bundle, entry_index, full_url
        )
        self.out.resources.append(site)
        self.constraints(model.constraints, value, rtype, path, ptr, site)
        self.object(value, model, child_path, ptr, site, (rtype, rtype))
        if rtype == "Bundle":
            self.bundle_entries(value, child_path, ptr, site)
        self.canonical_urls(value, rtype, child_path, ptr, container is not None)
        return site

    def canonical_urls(
        self, value: dict[str, Any], rtype: str, path: str, ptr: Pointer, contained: bool
    ) -> None:
        """The canonical URL of a canonical resource is absolute
        (https://hl7.org/fhir/R4/resource.html#canonical, "an absolute URI"), and so is
        a code system a ValueSet includes: a contained one is referenced by its own
        absolute URL, never ``#id`` (https://hl7.org/fhir/R4/valueset.html#compositions)."""
        url = value.get("url")
        if url is None and rtype != "ValueSet":
            return
        if (
            isinstance(url, str)
            and url
            and not _ABSOLUTE.match(url)
            and self._canonical_resource(rtype)
        ):
            text = (
                f"Canonical URLs in contained resources must be absolute URLs if present ({url})"
                if contained
                else "Canonical URLs must be absolute URLs if they are not fragment references "
                f"({url})"
            )
            self.add("error", "invalid", text, f"{path}.url", (*ptr, "url"))
        if rtype != "ValueSet" or not isinstance(value.get("compose"), dict):
            return
        for part in ("include", "exclude"):
            rows = value["compose"].get(part)
            for i, row in enumerate(rows if isinstance(rows, list) else []):
                system = row.get("system") if isinstance(row, dict) else None
                if isinstance(system, str) and system and not _ABSOLUTE.match(system):
                    self.add(
                        "error",
                        "invalid",
                        f"URI values in ValueSet.compose.{part}.system must be absolute. To "
                        "reference a contained code system, use the full CodeSystem URL and "
                        "reference it using the http://hl7.org/fhir/StructureDefinition/"
                        "valueset-system extension",
                        f"{path}.compose.{part}[{i}]",
                        (*ptr, "compose", part, i),
                    )

    def bundle_entries(
        self, bundle: dict[str, Any], path: str, ptr: Pointer, site: ResourceSite
    ) -> None:
        scope = BundleScope(bundle, site.path, ptr)
        entries = bundle.get("entry")
        if not isinstance(entries, list):
            return
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or not isinstance(entry.get("resource"), dict):
                continue
            full_url = entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None
            self.resource(
                entry["resource"],
                f"{path}.entry[{i}].resource",
                (*ptr, "entry", i, "resource"),
                None,
                scope,
                i,
                full_url,
            )

    # -- objects -------------------------------------------------------------------------

    def object(
        self,
        obj: dict[str, Any],
        model: TypeModel,
        path: str,
        ptr: Pointer,
        site: ResourceSite,
        host: tuple[str, str],
    ) -> None:
        keys = model.keys
        counts: dict[str, int] = {}
        is_resource = model.kind == "resource"
        here = path[: path.rfind("/*")] if is_resource and path.endswith("*/") else path
        for key, value in obj.items():
            if is_resource and key == "resourceType":
                continue
            if not isinstance(key, str) or not key:
                self.add("error", "structure", f"Invalid property name {key!r}", here, ptr)
                continue
            underscore = key.startswith("_")
            base = key[1:] if underscore else key
            hit = keys.get(base)
            if hit is None or (underscore and not hit[1][:1].islower()):
                self.add("error", "structure", f"Unrecognized property '{key}'", here, ptr)
                continue
            info, code = hit
            if underscore and base in obj:
                continue
            if code[:1].islower():
                n = self.primitive(obj, base, info, code, path, ptr, site)
            elif (info.children is None and self.index.is_resource(code)) or code == "Resource":
                n = self.nested_resources(value, key, info, path, ptr, site)
            else:
                n = self.complex(value, key, info, code, path, ptr, site, host)
            counts[info.path] = counts.get(info.path, 0) + n
        for info in model.elements:
            count = counts.get(info.path, 0)
            if count < info.min:
                self.add(
                    "error",
                    "structure",
                    f"{info.path}: minimum required = {info.min}, but only found {count} "
                    f"(from {model.url})",
                    here,
                    ptr,
                )
            elif info.max is not None and count > info.max:
                self.add(
                    "error",
                    "structure",
                    f"{info.path}: max allowed = {info.max}, but found {count} (from {model.url})",
                    here,
                    ptr,
                )

    def _items(
        self, value: Any, key: str, info: ElementInfo, path: str, ptr: Pointer
    ) -> list[tuple[Any, str, Pointer]]:
        """The values of one property with their locations; wrong array use is reported."""
        name_path = f"{path}.{info.name}"
        if isinstance(value, list):
            if not info.is_list:
                self.add(
                    "error",
                    "structure",
                    f"This property must be a single value, not an array: '{key}'",
                    name_path,
                    (*ptr, key),
                )
                return [(v, name_path, (*ptr, key, i)) for i, v in enumerate(value)]
            if not value:
                self.add(
                    "error",
                    "invalid",
                    _EMPTY_ARRAY,
                    name_path,
                    (*ptr, key),
                )
            return [(v, f"{name_path}[{i}]", (*ptr, key, i)) for i, v in enumerate(value)]
        if info.is_list:
            self.add(
                "error",
                "structure",
                f"This property must be an array, not {_label(value)}: '{key}'",
                name_path,
                (*ptr, key),
            )
            return [(value, f"{name_path}[0]", (*ptr, key))]
        return [(value, name_path, (*ptr, key))]

    def _type_path(self, info: ElementInfo, code: str, path: str) -> str:
        return f"{path}.{info.name}.ofType({code})" if info.choice else ""

    # -- primitives ----------------------------------------------------------------------

    def primitive(
        self,
        obj: dict[str, Any],
        base: str,
        info: ElementInfo,
        code: str,
        path: str,
        ptr: Pointer,
        site: ResourceSite,
    ) -> int:
        value, extra = obj.get(base), obj.get("_" + base)
        key = base if base in obj else "_" + base
        if info.is_list and (isinstance(value, list) or isinstance(extra, list)):
            values = value if isinstance(value, list) else []
            extras = extra if isinstance(extra, list) else []
            if (base in obj and not isinstance(value, list)) or (
                "_" + base in obj and not isinstance(extra, list)
            ):
                self.add(
                    "error",
                    "structure",
                    f"This property must be an array: '{key}'",
                    f"{path}.{info.name}",
                    (*ptr, key),
                )
            elif base in obj and "_" + base in obj and len(values) != len(extras):
                # https://hl7.org/fhir/R4/json.html#primitive: null fills the gaps.
                self.add(
                    "error",
                    "structure",
                    f"'{base}' has {len(values)} item(s) but '_{base}' has {len(extras)}: "
                    "the arrays must be equally long, with null for absent items",
                    f"{path}.{info.name}",
                    (*ptr, "_" + base),
                )
            if not values and not extras:
                self.add(
                    "error",
                    "invalid",
                    _EMPTY_ARRAY,
                    f"{path}.{info.name}",
                    (*ptr, key),
                )
                return 0
            count = max(len(values), len(extras))
            for i in range(count):
                self.primitive_value(
                    values[i] if i < len(values) else None,
                    extras[i] if i < len(extras) else None,
                    info,
                    code,
                    f"{path}.{info.name}[{i}]",
                    (*ptr, key, i),
                    site,
                )
            return count
        if isinstance(value, list) or isinstance(extra, list):
            self.add(
                "error",
                "structure",
                f"This property must be a single value, not an array: '{key}'",
                f"{path}.{info.name}",
                (*ptr, key),
            )
            return 1
        where = self._type_path(info, code, path) or (
            f"{path}.{info.name}[0]" if info.is_list else f"{path}.{info.name}"
        )
        if info.is_list:
            self.add(
                "error",
                "structure",
                f"This property must be an array, not {_label(value)}: '{key}'",
                f"{path}.{info.name}",
                (*ptr, key),
            )
        self.primitive_value(value, extra, info, code, where, (*ptr, key), site)
        return 1

    def primitive_value(
        self,
        value: Any,
        extra: Any,
        info: ElementInfo,
        code: str,
        path: str,
        ptr: Pointer,
        site: ResourceSite,
    ) -> None:
        if value is None and extra is None:
            self.add(
                "error",
                "invariant",
                "Constraint failed: ele-1: 'All FHIR elements must have a @value or children'",
                path,
                ptr,
            )
            return
        if value is not None:
            regex = self._regex.get(code, "")
            if regex == "":
                model = self.index.model(code)
                regex = self._regex[code] = model.regex if model else None
            problem = check_primitive(code, value, regex)
            if problem:
                self.add("error", "invalid", problem, path, ptr)
            elif code == "xhtml":
                for text in html_problems(str(value), links=True):
                    self.add("error", "invalid", text, path, ptr)
            elif isinstance(value, str):
                self.string_rules(value, code, path, ptr)
                if code == "canonical" and not value.startswith("#") and not _ABSOLUTE.match(value):
                    # https://hl7.org/fhir/R4/references.html#canonical
                    self.add(
                        "error",
                        "invalid",
                        "Canonical URLs must be absolute URLs if they are not fragment "
                        f"references ({value})",
                        path,
                        ptr,
                    )
                if info.binding:
                    issue = self.bindings.check(info.binding, code, value, path, self._unbound)
                    if issue:
                        self.out.findings.append(Finding(issue, ptr))
        elif (
            code == "code"
            and info.binding
            and info.binding[0] == "required"
            and not _carries_other_version_value(extra)
        ):
            # Only extensions (e.g. data-absent-reason) and no code: a required binding
            # still wants one (https://hl7.org/fhir/R4/terminologies.html#required).
            self.out.findings.append(
                Finding(self.bindings.no_code_issue(info.binding[1], path), ptr)
            )
        if extra is not None:
            if not isinstance(extra, dict):
                self.add(
                    "error", "structure", "The primitive extension must be an object", path, ptr
                )
            else:
                for k in extra:
                    if k not in _EXT_ALLOWED:
                        self.add("error", "structure", f"The property '{k}' is invalid", path, ptr)
                element = self.index.model("Element")
                if element is not None:
                    clean = {k: v for k, v in extra.items() if k in _EXT_ALLOWED}
                    self.object(clean, element, path, ptr, site, (code, info.path))
        if info.constraints and value is not None:
            self.constraints(info.constraints, value, code, path, ptr, site)

    def string_rules(self, value: str, code: str, path: str, ptr: Pointer) -> None:
        options = self.options
        if (
            code in ("uri", "url", "canonical")
            and not options.allow_example_urls
            and _EXAMPLE_URL.match(value)
        ):
            self.add(
                "error",
                "invalid",
                f"Example URLs are not allowed in this context ({value})",
                path,
                ptr,
            )
        if code == "markdown" and _HTML_TAG.search(value):
            found = _HTML_TAG.search(value)
            start = found.group(0)[:2] if found else "<"
            self.add(
                "error" if options.no_html_in_markdown else "warning",
                "invalid",
                f"The markdown contains content that appears to be an embedded HTML tag "
                f"starting at '{start}'. This will (or SHOULD) be escaped by the presentation "
                "layer. The content should be checked to confirm that this is the desired "
                "behaviour",
                path,
                ptr,
            )
        elif code == "string" and options.security_checks and _HTML_TAG.search(value):
            self.add(
                "error",
                "invalid",
                "The string value contains text that looks like embedded HTML tags, which are "
                "not allowed for security reasons in this context",
                path,
                ptr,
            )

    # -- complex values ------------------------------------------------------------------

    def nested_resources(
        self, value: Any, key: str, info: ElementInfo, path: str, ptr: Pointer, site: ResourceSite
    ) -> int:
        items = self._items(value, key, info, path, ptr)
        for item, item_path, item_ptr in items:
            if not isinstance(item, dict):
                self.add(
                    "error", "structure", "A resource must be a JSON object", item_path, item_ptr
                )
                continue
            if info.path == "Bundle.entry.resource":
                continue  # walked by ``bundle_entries``, with the Bundle as its scope
            container = site if info.path.endswith(".contained") else None
            if container is not None and not self.options.validate_contained:
                continue
            self.resource(item, item_path, item_ptr, container)
        return len(items)

    def complex(
        self,
        value: Any,
        key: str,
        info: ElementInfo,
        code: str,
        path: str,
        ptr: Pointer,
        site: ResourceSite,
        host: tuple[str, str],
    ) -> int:
        items = self._items(value, key, info, path, ptr)
        if info.choice:
            items = [(v, self._type_path(info, code, path), p) for v, _, p in items]
        model = self._model_of(info, code)
        type_name = (
            code
            if info.children is None and not info.content_ref
            else (info.content_ref or info.path)
        )
        for item, item_path, item_ptr in items:
            if item is None:
                self.add("error", "structure", "Null values are not allowed", item_path, item_ptr)
                continue
            if not isinstance(item, dict):
                self.add(
                    "error",
                    "structure",
                    f"This property must be an object, not {_label(item)}",
                    item_path,
                    item_ptr,
                )
                continue
            if not any(k != "id" for k in item):
                self.add(
                    "error",
                    "invariant",
                    "Constraint failed: ele-1: 'All FHIR elements must have a @value or children'",
                    item_path,
                    item_ptr,
                )
            if model is None:
                continue
            if code == "Extension":
                self.extension(item, item_path, item_ptr, host, path, ptr)
            self.object(item, model, item_path, item_ptr, site, (type_name, info.path))
            custom = (
                info.constraints + model.constraints if info.children is None else info.constraints
            )
            if custom:
                self.constraints(custom, item, type_name, item_path, item_ptr, site)
            if code == "Reference":
                self.out.references.append(
                    ReferenceSite(item, info.targets, item_path, item_ptr, site)
                )
            elif code == "Attachment":
                self.attachment(item, item_path, item_ptr)
            elif code == "Coding":
                display = "warning" if self.options.display_issues_are_warnings else "error"
                for problem in self.bindings.coding(item, item_path, display):
                    self.out.findings.append(Finding(problem, item_ptr))
            if info.binding and code in ("Coding", "CodeableConcept", "Quantity"):
                issue = self.bindings.check(info.binding, code, item, item_path, self._unbound)
                if issue:
                    self.out.findings.append(Finding(issue, item_ptr))
        return len(items)

    def _model_of(self, info: ElementInfo, code: str) -> TypeModel | None:
        if info.children is not None:
            return info.children
        if info.content_ref:
            target = self.index.element(info.content_ref)
            return target.children if target else None
        return self.index.model(code)

    def constraints(
        self,
        constraints: tuple[Constraint, ...],
        value: Any,
        type_path: str,
        path: str,
        ptr: Pointer,
        site: ResourceSite,
    ) -> None:
        if not constraints or not self.options.invariants:
            return
        wanted = tuple(
            c
            for c in {c.key: c for c in constraints}.values()
            if self.options.best_practice or not c.best_practice
        )
        if wanted:
            self.out.invariants.append(InvariantSite(wanted, value, type_path, path, ptr, site))

    # -- special datatypes ---------------------------------------------------------------

    def extension(
        self,
        ext: dict[str, Any],
        path: str,
        ptr: Pointer,
        host: tuple[str, str],
        host_path: str,
        host_ptr: Pointer,
    ) -> None:
        url = ext.get("url")
        if not isinstance(url, str) or ":" not in url:
            return  # the sub-extensions of a complex extension are named by its definition
        sd = self.index.definitions.structure_definition(url)
        if sd is None and _CROSS_VERSION.match(url):
            return  # defined by the specification itself for every element of other versions
        missing = self.index.missing_package_of(url) if sd is None else None
        if missing is not None:
            self.add(
                "warning",
                "not-found",
                f"The extension {url} is defined in the package {missing}, a dependency that "
                "is not installed; it was not checked",
                path,
                ptr,
            )
            return
        if sd is None and url.startswith(_HL7_EXTENSION_SPACES):
            # Published by HL7 in the extensions or tools packages (not installed here):
            # a real definition we cannot read, not an unknown one.
            self.add(
                "warning",
                "not-found",
                f"The extension {url} is published by HL7 outside the installed packages; "
                "it was not checked",
                path,
                ptr,
            )
            return
        if sd is None:
            self.add(
                self.options.unknown_extension,
                "structure",
                f"The extension {url} could not be found so is not allowed here",
                path,
                ptr,
            )
            return
        if sd.get("type") != "Extension":
            self.add("error", "structure", f"{url} is not an extension definition", path, ptr)
            return
        self.extension_value(ext, sd, url, path, ptr)
        contexts = sd.get("context") or []
        element_contexts = [
            str(c.get("expression")) for c in contexts if c.get("type") in ("element", None)
        ]
        if not element_contexts or len(element_contexts) != len(contexts):
            return
        host_type, host_def = host
        allowed = {host_type, host_def, "Element"}
        if self.index.is_resource(host_type):
            allowed |= {"Resource", "DomainResource"}
            if self._canonical_resource(host_type):
                allowed |= _CANONICAL_CONTEXTS
        elif "." in host_def and host_type == host_def:
            allowed.add("BackboneElement")
        if not allowed & set(element_contexts):
            self.add(
                "error",
                "structure",
                f"The extension {url} is not allowed to be used at this point (this element is "
                f"[{host_type}, {host_def}]; allowed: {', '.join(element_contexts)})",
                host_path,
                host_ptr,
            )

    def _canonical_resource(self, rtype: str) -> bool:
        """Whether a resource type follows the canonical resource pattern.

        Extensions written for R5 name the abstract ``CanonicalResource`` and
        ``MetadataResource`` (https://hl7.org/fhir/R5/canonicalresource.html) as context;
        in R4 those are the resources with ``url``, ``version``, ``name`` and ``status``
        (https://hl7.org/fhir/R4/resource.html#canonical).
        """
        found = _CANONICAL_TYPES.get(rtype)
        if found is None:
            model = self.index.model(rtype)
            found = model is not None and all(
                self.index.element(f"{rtype}.{n}") is not None for n in _CANONICAL_ELEMENTS
            )
            _CANONICAL_TYPES[rtype] = found
        return found

    def extension_value(
        self, ext: dict[str, Any], sd: dict[str, Any], url: str, path: str, ptr: Pointer
    ) -> None:
        """The value[x] of an extension against the types its definition allows."""
        sd = with_snapshot(sd, self.index.definitions) or sd
        element = next(
            (
                e
                for e in (sd.get("snapshot") or {}).get("element") or []
                if e.get("id") == "Extension.value[x]"
            ),
            None,
        )
        if element is None:
            return
        key = next((k for k in ext if k.startswith("value") and k[5:6].isupper()), None)
        allowed = [str(t.get("code")) for t in element.get("type") or []]
        if key is None:
            if int(element.get("min", 0)) > 0:
                self.add("error", "structure", f"Extension {url} requires a value", path, ptr)
            return
        code = key[5:]
        if str(element.get("max")) == "0":
            self.add("error", "structure", f"Extension {url} does not allow a value", path, ptr)
        elif allowed and not any(t[:1].upper() + t[1:] == code for t in allowed):
            primitive = code[:1].lower() + code[1:]
            model = self.index.model(primitive)
            name = primitive if model is not None and model.kind == "primitive-type" else code
            self.add(
                "error",
                "structure",
                f"The type {name} is not allowed for the value of extension {url} "
                f"(allowed: {', '.join(allowed)})",
                f"{path}.value.ofType({name})",
                (*ptr, key),
            )

    def attachment(self, att: dict[str, Any], path: str, ptr: Pointer) -> None:
        data, size = att.get("data"), att.get("size")
        if not isinstance(data, str) or not isinstance(size, int) or isinstance(size, bool):
            return
        try:
            actual = len(base64.b64decode(data, validate=True))
        except (binascii.Error, ValueError):
            self.add("error", "invalid", "The attachment data is not valid base64", path, ptr)
            return
        if actual != size:
            self.add(
                "error",
                "structure",
                f"Stated Attachment Size {size} does not match actual attachment size {actual}",
                path,
                ptr,
            )


def _carries_other_version_value(extra: Any) -> bool:
    """Whether a primitive's extensions hold its value in another FHIR version's form
    (https://hl7.org/fhir/R4/versions.html#extensions)."""
    if not isinstance(extra, dict):
        return False
    return any(
        isinstance(e, dict) and _CROSS_VERSION.match(str(e.get("url") or ""))
        for e in extra.get("extension") or []
    )
