"""UCUM-aware comparison for a few common units (https://hl7.org/fhir/R4/search.html#quantity).

Quantities in http://unitsofmeasure.org whose code is listed here are also
indexed in a canonical unit, so ``5.4|http://unitsofmeasure.org|mg`` finds
``0.0054 g``. Other units compare by their own code.
"""

from __future__ import annotations

UCUM = "http://unitsofmeasure.org"

_FACTORS: dict[str, tuple[float, str]] = {
    "g": (1.0, "g"),
    "kg": (1e3, "g"),
    "mg": (1e-3, "g"),
    "ug": (1e-6, "g"),
    "ng": (1e-9, "g"),
    "[lb_av]": (453.59237, "g"),
    "[oz_av]": (28.349523125, "g"),
    "m": (1.0, "m"),
    "cm": (1e-2, "m"),
    "mm": (1e-3, "m"),
    "km": (1e3, "m"),
    "[in_i]": (0.0254, "m"),
    "[ft_i]": (0.3048, "m"),
    "s": (1.0, "s"),
    "ms": (1e-3, "s"),
    "min": (60.0, "s"),
    "h": (3600.0, "s"),
    "d": (86400.0, "s"),
    "wk": (604800.0, "s"),
    "L": (1.0, "L"),
    "l": (1.0, "L"),
    "dL": (0.1, "L"),
    "mL": (1e-3, "L"),
    "uL": (1e-6, "L"),
    "g/L": (1.0, "g/L"),
    "g/dL": (10.0, "g/L"),
    "mg/dL": (1e-2, "g/L"),
    "mg/L": (1e-3, "g/L"),
    "kg/m2": (1.0, "kg/m2"),
    "mmol/L": (1.0, "mmol/L"),
    "umol/L": (1e-3, "mmol/L"),
    "mm[Hg]": (1.0, "mm[Hg]"),
    "%": (1.0, "%"),
}


def canonical(value: float, system: str | None, code: str | None) -> tuple[float, str] | None:
    """(value, unit) in the canonical unit, or None when the unit is not one we convert."""
    if system != UCUM or code is None:
        return None
    found = _FACTORS.get(code)
    if found is None:
        return None
    factor, unit = found
    return value * factor, unit
