"""Narrative XHTML rules (https://hl7.org/fhir/R4/narrative.html#xhtml).

The div may hold only the basic HTML formatting elements and attributes (no
scripts, forms, frames, or event handler attributes); ``html_problems`` lists
what breaks that rule.
"""

from __future__ import annotations

from html.parser import HTMLParser

_ELEMENTS = frozenset(
    [
        "a",
        "abbr",
        "acronym",
        "b",
        "big",
        "blockquote",
        "br",
        "caption",
        "cite",
        "code",
        "col",
        "colgroup",
        "dd",
        "dfn",
        "div",
        "dl",
        "dt",
        "em",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "i",
        "img",
        "li",
        "ol",
        "p",
        "pre",
        "q",
        "samp",
        "small",
        "span",
        "strong",
        "sub",
        "sup",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "tt",
        "ul",
        "var",
    ]
)
_ATTRIBUTES = frozenset(
    [
        "abbr",
        "accesskey",
        "align",
        "alt",
        "axis",
        "bgcolor",
        "border",
        "cellhalign",
        "cellpadding",
        "cellspacing",
        "cellvalign",
        "char",
        "charoff",
        "charset",
        "cite",
        "class",
        "colspan",
        "compact",
        "coords",
        "dir",
        "frame",
        "headers",
        "height",
        "href",
        "hreflang",
        "hspace",
        "id",
        "lang",
        "longdesc",
        "name",
        "nowrap",
        "rel",
        "rev",
        "rowspan",
        "rules",
        "scope",
        "shape",
        "span",
        "src",
        "start",
        "style",
        "summary",
        "tabindex",
        "title",
        "type",
        "valign",
        "value",
        "vspace",
        "width",
        "xml:lang",
        "xmlns",
    ]
)


class _Checker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _ELEMENTS:
            self.problems.append(f"Invalid element name in the XHTML ('{tag}')")
        for name, value in attrs:
            if name not in _ATTRIBUTES and not name.startswith("xmlns"):
                self.problems.append(f"Invalid attribute name in the XHTML ('{name}' on '{tag}')")
            elif (
                name in ("href", "src")
                and value
                and value.strip().lower().startswith("javascript:")
            ):
                self.problems.append(f"Script in the XHTML attribute '{name}' is not allowed")


def html_problems(div: str) -> list[str]:
    """What in a narrative div breaks the FHIR XHTML rules (empty when it is fine)."""
    checker = _Checker()
    checker.feed(div)
    checker.close()
    return checker.problems
