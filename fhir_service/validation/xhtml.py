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
        self.anchors: set[str] = set()
        self.links: list[tuple[str, str, list[str]]] = []  # href, where, text parts
        self.stack: list[str] = []
        self._open_link: tuple[str, str, list[str]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _VOID:
            self.stack.append(tag)
        for name, value in attrs:
            if name in ("id", "name") and value:
                self.anchors.add(value)
        href = dict(attrs).get("href")
        if tag == "a" and href and href.startswith("#") and len(href) > 1:
            self._open_link = (href, "/".join(self.stack), [])
            self.links.append(self._open_link)
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

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._open_link = None
        if tag in self.stack:
            while self.stack and self.stack.pop() != tag:
                pass

    def handle_data(self, data: str) -> None:
        if self._open_link is not None:
            self._open_link[2].append(data)


_VOID = frozenset({"br", "hr", "img", "col", "area"})


def html_problems(div: str, *, links: bool = False) -> list[str]:
    """What in a narrative div breaks the FHIR XHTML rules (empty when it is fine).

    Besides the element and attribute rules of https://hl7.org/fhir/R4/narrative.html#xhtml,
    with ``links`` a link to a fragment (``href="#x"``) must reach an ``id`` or ``name`` of the same
    narrative: the narrative is read on its own, so anything else does not resolve.
    """
    checker = _Checker()
    checker.feed(div)
    checker.close()
    problems = list(checker.problems)
    for href, where, text in checker.links if links else []:
        if href[1:] not in checker.anchors:
            shown = " ".join("".join(text).split())
            problems.append(f"Hyperlink '{href}' at '{where}' for '{shown}' does not resolve")
    return problems
