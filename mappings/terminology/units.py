"""UCUM unit codes checked against UCUM's grammar (https://ucum.org/ucum#section-Syntax-Rules).

The parser is ucumvert's (a Lark grammar of the UCUM specification, with its tables of
base units, derived units and prefixes), so any UCUM code is accepted (``g/dL``,
``mg/m2``, ``10*9/L``, ``{mitoses}/(10.[HPF])``) and anything else refused with the
position of the first character the grammar cannot read. ucum.yaml only gives
readable names for common units; it is not a closed list.
"""

from __future__ import annotations

import re
from functools import cache

from lark import Lark
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput

_SYMBOL = re.compile(r"[^./()]+")


@cache
def _parser() -> Lark:
    from ucumvert import get_ucum_parser

    return get_ucum_parser()


def ucum_problem(unit: str) -> str | None:
    """Why ``unit`` is not a UCUM code (None when it is one)."""
    if not unit:
        return "an empty unit is not a UCUM code (UCUM writes unity as '1')"
    if unit != unit.strip() or any(c.isspace() for c in unit):
        return f"{unit!r} is not a UCUM code: UCUM codes contain no spaces"
    try:
        _parser().parse(unit)
    except UnexpectedCharacters as exc:
        start, symbol = _symbol_at(unit, exc.column - 1)
        return (
            f"{unit!r} is not a UCUM code: {symbol!r} at position {start + 1} is not a UCUM unit"
            " symbol (with an optional prefix and exponent), a number or an annotation in {}"
            " (https://ucum.org/ucum)"
        )
    except UnexpectedEOF:
        return (
            f"{unit!r} is not a UCUM code: it ends in the middle of a term (https://ucum.org/ucum)"
        )
    except (UnexpectedInput, LarkError) as exc:
        return f"{unit!r} is not a UCUM code: {str(exc).splitlines()[0]} (https://ucum.org/ucum)"
    return None


def _symbol_at(unit: str, index: int) -> tuple[int, str]:
    """The symbol (text between the operators ``.``, ``/`` and brackets) around ``index``."""
    for match in _SYMBOL.finditer(unit):
        if match.start() <= index < max(match.end(), match.start() + 1):
            return match.start(), match.group()
    return index, unit[index:]


def is_valid_ucum(unit: str) -> bool:
    """True when ``unit`` follows UCUM's grammar and names UCUM units."""
    return ucum_problem(unit) is None
