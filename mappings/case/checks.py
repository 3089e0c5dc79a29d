"""Whole-file checks that one field cannot make alone: unique keys, cross-references, time order.

Each problem carries the path of the offending field so the loader can name its
line. References resolve within the file only; keys later seed resource ids
(https://hl7.org/fhir/R4/references.html).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from mappings.case import model as m
from mappings.case.timing import RelativeTime

Path = tuple[str | int, ...]

CONDITION_KINDS: tuple[type, ...] = (
    m.Diagnosis,
    m.HistoryCondition,
    m.Symptom,
    m.Finding,
    m.Complication,
    m.AdverseEvent,
)
"""What ``reasons`` may point to: things a treatment or study is for."""
CAUSE_KINDS: tuple[type, ...] = (
    m.MedicationCourse,
    m.RadiotherapyCourse,
    m.Procedure,
    m.Regimen,
)
COURSE_KINDS: tuple[type, ...] = (m.MedicationCourse, m.RadiotherapyCourse)


@dataclass(frozen=True)
class Problem:
    """One problem: the path of the field and what is wrong."""

    path: Path
    message: str


def check_case(case: m.Case) -> list[Problem]:
    """All whole-file problems of ``case`` (empty when it is consistent)."""
    problems: list[Problem] = []
    index: dict[str, m.Strict] = {}
    for path, item in case.keyed():
        key: str = item.key  # type: ignore[attr-defined]
        if key in index:
            problems.append(Problem((*path, "key"), f"duplicate key {key!r}"))
        else:
            index[key] = item
    problems.extend(_references(case, index))
    problems.extend(_time_order(case, index))
    problems.extend(_cycles(case))
    return problems


def _ref(
    index: dict[str, m.Strict],
    path: Path,
    key: str | None,
    kinds: tuple[type, ...] | None,
    what: str,
) -> Iterator[Problem]:
    if key is None:
        return
    item = index.get(key)
    if item is None:
        yield Problem(path, f"unknown key {key!r}")
    elif kinds is not None and not isinstance(item, kinds):
        yield Problem(path, f"key {key!r} is a {type(item).__name__}, expected {what}")


def _refs(
    index: dict[str, m.Strict],
    path: Path,
    keys: Iterable[str],
    kinds: tuple[type, ...] | None,
    what: str,
) -> Iterator[Problem]:
    for i, key in enumerate(keys):
        yield from _ref(index, (*path, i), key, kinds, what)


def _references(case: m.Case, ix: dict[str, m.Strict]) -> Iterator[Problem]:
    cond = (
        "a condition-like fact (diagnosis, history, symptom, finding, complication, adverse event)"
    )
    yield from _ref(
        ix, ("anchor", "procedure"), case.anchor.procedure, (m.Procedure,), "a procedure"
    )
    for i, st in enumerate(case.imaging):
        yield from _refs(ix, ("imaging", i, "reasons"), st.reasons, CONDITION_KINDS, cond)
    for i, dx in enumerate(case.diagnoses):
        p: Path = ("diagnoses", i)
        yield from _ref(ix, (*p, "primary"), dx.primary, (m.Diagnosis,), "a diagnosis")
        primary = ix.get(dx.primary or "")
        if isinstance(primary, m.Diagnosis) and primary.role != "primary":
            yield Problem((*p, "primary"), f"key {dx.primary!r} is not a primary diagnosis")
        yield from _refs(ix, (*p, "evidence"), dx.evidence, None, "")
    for i, pr in enumerate(case.procedures):
        p = ("procedures", i)
        yield from _ref(ix, (*p, "part_of"), pr.part_of, (m.Procedure,), "a procedure")
        yield from _refs(ix, (*p, "reasons"), pr.reasons, CONDITION_KINDS, cond)
    for i, en in enumerate(case.encounters):
        p = ("encounters", i)
        yield from _ref(ix, (*p, "part_of"), en.part_of, (m.Encounter,), "an encounter")
        yield from _refs(ix, (*p, "reasons"), en.reasons, CONDITION_KINDS, cond)
        for j, act in enumerate(en.activities):
            yield from _refs(
                ix, (*p, "activities", j, "reasons"), act.reasons, CONDITION_KINDS, cond
            )
        for j, dec in enumerate(en.decisions):
            yield from _refs(ix, (*p, "decisions", j, "refs"), dec.refs, None, "")
    for i, rep in enumerate(case.pathology):
        p = ("pathology", i)
        yield from _refs(ix, (*p, "diagnoses"), rep.diagnoses, (m.Diagnosis,), "a diagnosis")
        if rep.specimen is not None:
            yield from _ref(
                ix,
                (*p, "specimen", "collected_by"),
                rep.specimen.collected_by,
                (m.Procedure,),
                "a procedure",
            )
    for i, rg in enumerate(case.regimens):
        yield from _refs(ix, ("regimens", i, "reasons"), rg.reasons, CONDITION_KINDS, cond)
    for i, mc in enumerate(case.medication_courses):
        p = ("medication_courses", i)
        yield from _ref(ix, (*p, "regimen"), mc.regimen, (m.Regimen,), "a regimen")
        yield from _ref(ix, (*p, "follows"), mc.follows, COURSE_KINDS, "a course")
        yield from _refs(ix, (*p, "reasons"), mc.reasons, CONDITION_KINDS, cond)
        yield from _refs(
            ix,
            (*p, "stop_adverse_events"),
            mc.stop_adverse_events,
            (m.AdverseEvent,),
            "an adverse event",
        )
        own = {d.key for d in mc.drugs}
        for j, ov in enumerate(mc.cycle_overrides):
            if ov.drug not in own:
                yield Problem(
                    (*p, "cycle_overrides", j, "drug"),
                    f"key {ov.drug!r} is not a drug of this course",
                )
    for i, rt in enumerate(case.radiotherapy_courses):
        p = ("radiotherapy_courses", i)
        yield from _ref(ix, (*p, "regimen"), rt.regimen, (m.Regimen,), "a regimen")
        yield from _ref(ix, (*p, "follows"), rt.follows, COURSE_KINDS, "a course")
        yield from _refs(ix, (*p, "reasons"), rt.reasons, CONDITION_KINDS, cond)
    for i, ae in enumerate(case.adverse_events):
        yield from _refs(
            ix,
            ("adverse_events", i, "caused_by"),
            ae.caused_by,
            CAUSE_KINDS,
            "a course or procedure",
        )
    for i, ds in enumerate(case.disease_status):
        p = ("disease_status", i)
        yield from _ref(ix, (*p, "diagnosis"), ds.diagnosis, (m.Diagnosis,), "a diagnosis")
        yield from _refs(ix, (*p, "evidence"), ds.evidence, None, "")
    for i, note in enumerate(case.notes):
        yield from _refs(ix, ("notes", i, "about"), note.about, None, "")


def _start(item: m.Strict | None) -> RelativeTime | None:
    for name in ("start", "when"):
        value = getattr(item, name, None)
        if isinstance(value, RelativeTime):
            return value
    return None


def _before(a: RelativeTime | None, b: RelativeTime | None) -> bool:
    """True when both are known and ``a`` is strictly later than ``b`` (out of order)."""
    return a is not None and b is not None and a.sort_key() > b.sort_key()


def _time_order(case: m.Case, ix: dict[str, m.Strict]) -> Iterator[Problem]:
    spans: list[tuple[Path, m.Strict]] = [
        *((("encounters", i), x) for i, x in enumerate(case.encounters)),
        *((("medication_courses", i), x) for i, x in enumerate(case.medication_courses)),
        *((("radiotherapy_courses", i), x) for i, x in enumerate(case.radiotherapy_courses)),
    ]
    for path, span in spans:
        start, end = getattr(span, "start", None), getattr(span, "end", None)
        if _before(start, end):
            yield Problem((*path, "end"), f"end ({end}) is before start ({start})")
        follows = getattr(span, "follows", None)
        if follows and _before(_start(ix.get(follows)), start):
            yield Problem(
                (*path, "start"), f"starts ({start}) before {follows!r}, which it follows"
            )
    for i, pr in enumerate(case.procedures):
        for j, comp in enumerate(pr.complications):
            if _before(pr.when, comp.when):
                yield Problem(
                    ("procedures", i, "complications", j, "when"),
                    f"complication ({comp.when}) is before its procedure ({pr.when})",
                )
    for i, ae in enumerate(case.adverse_events):
        for key in ae.caused_by:
            cause_start = _start(ix.get(key))
            if _before(cause_start, ae.when):
                yield Problem(
                    ("adverse_events", i, "when"),
                    f"adverse event ({ae.when}) is before its cause {key!r} ({cause_start})",
                )
    for i, rep in enumerate(case.pathology):
        collected_by = rep.specimen.collected_by if rep.specimen else None
        taken = _start(ix.get(collected_by or ""))
        if _before(taken, rep.when):
            yield Problem(
                ("pathology", i, "when"), f"report ({rep.when}) is before its specimen ({taken})"
            )
    for i in range(1, len(case.disease_status)):
        prev, cur = case.disease_status[i - 1], case.disease_status[i]
        if _before(prev.when, cur.when):
            yield Problem(
                ("disease_status", i, "when"),
                f"disease status timeline not ascending: {cur.when} after {prev.when}",
            )


def _cycles(case: m.Case) -> Iterator[Problem]:
    for i, mc in enumerate(case.medication_courses):
        p: Path = ("medication_courses", i)
        length = mc.cycle_length.days() if mc.cycle_length else None
        for j, drug in enumerate(mc.drugs):
            if length is not None and drug.days and drug.days[-1] > length:
                yield Problem(
                    (*p, "drugs", j, "days"), f"day {drug.days[-1]} is beyond the cycle length"
                )
        last = max(mc.cycles or 0, mc.cycles_planned or 0) or None
        for j, ov in enumerate(mc.cycle_overrides):
            for k, step in enumerate(ov.steps):
                if length is not None and step.days[-1] > length:
                    yield Problem(
                        (*p, "cycle_overrides", j, "steps", k, "days"),
                        f"day {step.days[-1]} is beyond the cycle length",
                    )
            if last is not None and ov.cycle > last:
                yield Problem(
                    (*p, "cycle_overrides", j, "cycle"),
                    f"cycle {ov.cycle} but the course has {last}",
                )
            override_drug = next((d for d in mc.drugs if d.key == ov.drug), None)
            if override_drug is not None and override_drug.continuous:
                yield Problem(
                    (*p, "cycle_overrides", j, "drug"),
                    f"{ov.drug!r} is given continuously: it has no cycle days to override",
                )
