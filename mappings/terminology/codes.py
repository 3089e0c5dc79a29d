"""Code tables (data files beside this module) and look-up of ``system:code`` references.

A case file names a coded concept as ``prefix:code`` (``snomed:61977001``); the
prefix stands for a canonical system URI (systems.yaml,
https://hl7.org/fhir/R4/terminologies-systems.html) and each prefix has one table
``<prefix>.yaml`` mapping code -> display, status (checked | known) and source.
``lookup`` turns a reference into the parts of a FHIR Coding
(https://hl7.org/fhir/R4/datatypes.html#Coding) and refuses unknown codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

from ruamel.yaml import YAML

Status = Literal["checked", "known"]


class UnknownCode(LookupError):
    """A code reference whose prefix or code is not in the tables."""


@dataclass(frozen=True)
class CodeEntry:
    """One row of a code table: a code with its system, display, status and source."""

    prefix: str
    system: str
    code: str
    display: str
    status: Status
    source: str

    @property
    def ref(self) -> str:
        """The reference as written in case files, ``prefix:code``."""
        return f"{self.prefix}:{self.code}"

    def coding(self) -> dict[str, str]:
        """This code as a FHIR Coding (JSON)."""
        return {"system": self.system, "code": self.code, "display": self.display}


def _read(name: str) -> Any:
    text = resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
    return YAML(typ="safe").load(text)


@cache
def systems() -> dict[str, str]:
    """Prefix -> canonical system URI."""
    return {str(k): str(v) for k, v in _read("systems.yaml").items()}


@cache
def table(prefix: str) -> dict[str, CodeEntry]:
    """The code table of one prefix (code -> entry); raises UnknownCode for an unknown prefix."""
    system = systems().get(prefix)
    if system is None:
        raise UnknownCode(f"unknown code system prefix {prefix!r} (known: {', '.join(systems())})")
    rows = _read(f"{prefix}.yaml") or {}
    entries: dict[str, CodeEntry] = {}
    for code, row in rows.items():
        status = row["status"]
        if status not in ("checked", "known"):
            raise ValueError(f"{prefix}.yaml: {code}: status must be checked or known")
        entries[str(code)] = CodeEntry(
            prefix, system, str(code), str(row["display"]), status, str(row["source"])
        )
    return entries


def split(ref: str) -> tuple[str, str]:
    """``'snomed:61977001'`` -> ``('snomed', '61977001')``; raises UnknownCode if malformed."""
    prefix, sep, code = ref.partition(":")
    if not sep or not prefix or not code:
        raise UnknownCode(f"bad code reference {ref!r}: expected prefix:code, e.g. snomed:61977001")
    return prefix, code


def lookup(ref: str) -> CodeEntry:
    """The table entry of ``ref`` (``prefix:code``); raises UnknownCode if absent."""
    prefix, code = split(ref)
    entry = table(prefix).get(code)
    if entry is None:
        raise UnknownCode(f"unknown code {ref!r}: not in mappings/terminology/{prefix}.yaml")
    return entry


def is_ucum_unit(unit: str) -> bool:
    """True when ``unit`` is a UCUM code by UCUM's grammar (not only those in ucum.yaml)."""
    from mappings.terminology.units import is_valid_ucum

    return is_valid_ucum(unit)


def ucum(unit: str) -> CodeEntry:
    """The ucum.yaml entry of ``unit``; raises UnknownCode (``unknown UCUM unit``) if absent."""
    entry = table("ucum").get(unit)
    if entry is None:
        raise UnknownCode(f"unknown UCUM unit {unit!r}")
    return entry
