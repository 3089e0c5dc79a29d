"""Scrubbing of the free text a de-identification rule keeps
(https://hl7.org/fhir/R4/security-labels.html, de-identified data; HIPAA Safe Harbor,
45 CFR 164.514(b)(2)).

Replaced, in this order: e-mail addresses ``[EMAIL]``, URLs ``[URL]``, calendar dates in
ISO, numeric or word form ("12 March 2021", "March 12, 2021", "Mar 2021") ``[DATE]``,
social security numbers ``[ID]``, phone numbers ``[PHONE]``, street addresses
``[ADDRESS]``, identifiers (a token with five or more digits, or letters with three or
more digits) ``[ID]``, then names: the names the
resource itself carries (HumanName parts, Reference displays, ``authorString``), a title
and the words after it ("Dr. Smith"), and every capitalised word that is neither a common
word nor a word of the resource's Coding displays ``[NAME]``. The last rule errs towards
removing: an eponym ("Parkinson") outside the codings is removed too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_DAY = r"\d{1,2}(?:st|nd|rd|th)?"
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"[\w.+%-]+@[\w-]+(?:\.[\w-]+)+", re.I), "[EMAIL]"),
    (re.compile(r"\b(?:[a-z][a-z0-9+.-]*://|www\.|urn:)\S+", re.I), "[URL]"),
    (
        re.compile(
            rf"\b(?:\d{{4}}-\d{{1,2}}(?:-\d{{1,2}})?(?:T[\d:.]+(?:Z|[+-]\d{{2}}:?\d{{2}})?)?"
            rf"|\d{{1,2}}[/.]\d{{1,2}}[/.]\d{{2,4}}"
            rf"|{_DAY}\s+(?:of\s+)?{_MONTH}(?:,?\s+\d{{2,4}})?"
            rf"|{_MONTH}\s+{_DAY}(?:,?\s+\d{{2,4}})?"
            rf"|{_MONTH}\s+\d{{4}})\b",
            re.I,
        ),
        "[DATE]",
    ),
    (re.compile(r"\b\d{3}-\d{2}-\d{4}\b"), "[ID]"),  # a US social security number
    (re.compile(r"(?<![\w.])\+?\(?\d[\d\s().-]{5,}\d(?![\w.])"), "[PHONE]"),
    (
        re.compile(
            r"\b\d+[A-Za-z]?\s+(?:[A-Z][\w'-]*\s+){1,4}(?:street|st|road|rd|avenue|ave|way|"
            r"lane|ln|drive|dr|boulevard|blvd|court|ct|place|pl|square|sq|terrace|close)\b\.?",
            re.I,
        ),
        "[ADDRESS]",
    ),
)
_TOKEN = re.compile(r"[\w-]*\d[\w-]*")
_TITLE = re.compile(
    r"\b(?i:dr|mr|mrs|ms|miss|mx|prof|sir|nurse|rev)\.?\s+[A-Z][\w'-]*(?:\s+[A-Z][\w'-]*){0,2}"
)
_WORD = re.compile(r"[^\W\d_][\w'\u2019-]*")

_COMMON = """a about above after again against all also an and any apply are as at before below
    between both but by can daily day days do does dose doses during each every few for from
    given has have history if in into is it its left less like may more most mouth much must
    negative night no nor normal not of off on once one only or other over patient per
    positive prior right same should so some such take taken than that the their then there
    these this those three through to twice two under until up use used very was week weeks
    were what when where which while who with within without would year years abnormal acute
    chronic mild moderate severe tablet tablets capsule oral topical injection as needed
    morning evening bedtime meal meals food water hours hour minutes times time month months
    status unknown other none see note result results test tests level levels blood urine
    pain follow continue stop start increase decrease reduce hold check monitor"""
COMMON_WORDS = frozenset(_COMMON.split())
"""Capitalised at the start of a sentence, these are words, not names."""


def _identifier(match: re.Match[str]) -> str:
    token = match.group(0)
    digits = sum(c.isdigit() for c in token)
    letters = sum(c.isalpha() for c in token)
    if digits >= 5 or (letters and digits >= 3):
        return "[ID]"
    return token


def vocabulary(displays: Iterable[str]) -> frozenset[str]:
    """The lower-case words of Coding displays: capitalised words that are not names."""
    return frozenset(w.lower() for d in displays for w in _WORD.findall(d))


def scrub(text: str, names: Iterable[str], words: frozenset[str]) -> str:
    """``text`` with identifying content replaced by placeholders; ``names`` are the names
    the resource carries, ``words`` capitalised words allowed besides ``COMMON_WORDS``."""
    for pattern, placeholder in _PATTERNS:
        text = pattern.sub(placeholder, text)
    text = _TOKEN.sub(_identifier, text)
    for name in sorted({n for n in names if len(n) > 1}, key=len, reverse=True):
        text = re.sub(rf"(?<!\w){re.escape(name)}(?!\w)", "[NAME]", text, flags=re.I)
    text = _TITLE.sub("[NAME]", text)

    def word(match: re.Match[str]) -> str:
        token = match.group(0)
        if not token[0].isupper() or token.isupper():
            return token
        lower = token.lower()
        stem = lower.rstrip("s'\u2019")
        if lower in COMMON_WORDS or lower in words or stem in words or stem in COMMON_WORDS:
            return token
        return "[NAME]"

    return _WORD.sub(lambda m: m.group(0) if _is_placeholder(text, m) else word(m), text)


def _is_placeholder(text: str, match: re.Match[str]) -> bool:
    start, end = match.span()
    return start > 0 and text[start - 1] == "[" and end < len(text) and text[end] == "]"
