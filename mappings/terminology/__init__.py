"""Code tables as data (SNOMED CT, LOINC, RxNorm, ICD-10-CM, ICD-O-3, ATC, UCUM).

Public API: ``lookup``, ``ucum``, ``is_ucum_unit``, ``systems``, ``table``,
``CodeEntry``, ``UnknownCode`` (all in ``mappings.terminology.codes``).
"""

from mappings.terminology.codes import (
    CodeEntry,
    UnknownCode,
    is_ucum_unit,
    lookup,
    systems,
    table,
    ucum,
)

__all__ = ["CodeEntry", "UnknownCode", "is_ucum_unit", "lookup", "systems", "table", "ucum"]
