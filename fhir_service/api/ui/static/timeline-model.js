/*
 * The timeline model: FHIR resources of one patient -> ordered columns, lanes and events.
 *
 * Dates are used where the record has them. Where it has none, the notes' stated times
 * ("Start in the report: after day 0", "month +12") place the event relative to day 0,
 * and links refine the order (CarePlan.replaces, CarePlan.supportingInfo, the course an
 * AdverseEvent's suspect belongs to). Nothing here invents a date: a time the record does
 * not give stays a "before"/"after" band. A date the mapping computed from a relative time
 * carries the relative-time extension on its primitive (docs/mapping.md): it gives day 0
 * directly, and the event shows the time as recorded with the date derived from it.
 * Pure functions, no DOM.
 */
"use strict";

window.TimelineModel = (function () {
  const DAYS_PER_MONTH = 30.4375;
  const DAR = "http://hl7.org/fhir/StructureDefinition/data-absent-reason";
  const DISEASE_STATUS = "97509-4";
  const RT_COURSE = "1217123003";
  const RELATIVE_TIME = "urn:fhir-service:StructureDefinition:relative-time";

  const LANES = [
    { id: "diagnoses", label: "Presentation & diagnoses" },
    { id: "labs", label: "Laboratory" },
    { id: "imaging", label: "Imaging & reports" },
    { id: "encounters", label: "Consultations & stays" },
    { id: "procedures", label: "Surgery & procedures" },
    { id: "radiotherapy", label: "Radiotherapy" },
    { id: "systemic", label: "Systemic therapy" },
    { id: "adverse", label: "Complications & adverse events" },
    { id: "status", label: "Disease status" },
  ];

  const refKey = (r) => r.resourceType + "/" + r.id;
  /** A FHIR element as a list (repeating elements are arrays, single ones are not). */
  const list = (value) => (Array.isArray(value) ? value : value ? [value] : []);

  function conceptText(concept) {
    if (!concept) return "";
    if (concept.text) return concept.text;
    const coding = list(concept.coding)[0];
    return coding ? coding.display || coding.code || "" : "";
  }

  function codes(concept) {
    return list(concept && concept.coding).map((c) => c.code);
  }

  function hasCode(concept, code) {
    return codes(concept).includes(code);
  }

  /** Index by "Type/id" and by business identifier urn (references may use either). */
  function indexResources(resources) {
    const index = new Map();
    for (const r of resources) {
      index.set(refKey(r), r);
      for (const ident of list(r.identifier)) {
        if (ident.system === "urn:ietf:rfc:3986" && ident.value) index.set(ident.value, r);
      }
    }
    return index;
  }

  function resolve(index, reference) {
    if (!reference || !reference.reference) return null;
    const ref = reference.reference;
    if (index.has(ref)) return index.get(ref);
    const parts = ref.split("/");
    if (parts.length >= 2) {
      const key = parts[parts.length - 2] + "/" + parts[parts.length - 1];
      if (index.has(key)) return index.get(key);
    }
    return null;
  }

  function decodeBase64(data) {
    try {
      const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
      return new TextDecoder("utf-8").decode(bytes);
    } catch (err) {
      return "";
    }
  }

  /** Notes of a resource: note[], R5 note extensions, onsetString, and linked notes. */
  function ownNotes(r) {
    const notes = list(r.note).map((n) => n.text).filter(Boolean);
    for (const ext of list(r.extension)) {
      if (ext.url && ext.url.endsWith(".note") && ext.valueAnnotation && ext.valueAnnotation.text) {
        notes.push(ext.valueAnnotation.text);
      }
    }
    if (r.onsetString) notes.push(r.onsetString);
    return notes;
  }

  // ---- times -------------------------------------------------------------------------

  const UNIT_MONTHS = { day: 1 / DAYS_PER_MONTH, week: 7 / DAYS_PER_MONTH, month: 1, year: 12 };
  const STATED = /([^.;:"]*?)in the report:\s*(before|after)?\s*(day|week|month|year)\s*([+-]?\d+)/gi;
  const LOOSE = /\b(before|after)\s+(day|week|month|year)\s*([+-]?\d+)/i;

  /** Times stated in notes: [{kind: "start"|"end", q: -1|0|1, m: months, text}]. */
  function statedTimes(notes, loose) {
    const found = [];
    for (const note of notes) {
      for (const match of note.matchAll(STATED)) {
        const kind = /\bend\b/i.test(match[1]) ? "end" : "start";
        const q = match[2] ? (match[2].toLowerCase() === "before" ? -1 : 1) : 0;
        const m = Number(match[4]) * UNIT_MONTHS[match[3].toLowerCase()];
        const text = (match[2] ? match[2].toLowerCase() + " " : "") + match[3].toLowerCase() + " " + match[4];
        found.push({ kind, q, m, text });
      }
    }
    if (!found.length && loose) {
      for (const note of loose) {
        const match = note.match(LOOSE);
        if (match) {
          const q = match[1].toLowerCase() === "before" ? -1 : 1;
          found.push({ kind: "start", q, m: Number(match[3]) * UNIT_MONTHS[match[2].toLowerCase()],
            text: match[1].toLowerCase() + " " + match[2].toLowerCase() + " " + match[3] });
          break;
        }
      }
    }
    return found;
  }

  function isDate(value) {
    return typeof value === "string" && /^\d{4}(-\d{2}(-\d{2})?)?/.test(value);
  }

  /**
   * The relative-time mark on a primitive's extension element (``_effectiveDateTime``):
   * {time: the relative time as recorded, anchor: what day 0 is, anchorDate: its date}.
   */
  function derivedMark(element) {
    for (const ext of list(element && element.extension)) {
      if (ext.url !== RELATIVE_TIME) continue;
      const part = (name) => list(ext.extension).find((p) => p.url === name) || {};
      const time = part("relativeTime").valueString;
      if (!time) return null;
      return { time, anchor: part("anchor").valueString || null, anchorDate: part("anchorDate").valueDate || null };
    }
    return null;
  }

  /** The value of element ``key`` of ``holder`` when it is a date, with its derived mark. */
  function datedValue(holder, key) {
    return isDate(holder[key]) ? { date: holder[key], mark: derivedMark(holder["_" + key]) } : null;
  }

  /** [start, end] of a period-like element, or null when it has neither date. */
  function periodDates(period) {
    if (!period) return null;
    const start = datedValue(period, "start");
    const end = datedValue(period, "end");
    return start || end ? [start, end] : null;
  }

  /** [start, end] of a resource, each {date, mark} or null. */
  function datedOf(r) {
    for (const prefix of ["onset", "effective", "performed", "occurrence"]) {
      const point = datedValue(r, prefix + "DateTime") || datedValue(r, prefix + "Instant");
      if (point) return [point, null];
      const span = periodDates(r[prefix + "Period"]);
      if (span) return span;
    }
    const span = periodDates(r.period);
    if (span) return span;
    if (r.resourceType === "AdverseEvent" && datedValue(r, "date")) return [datedValue(r, "date"), null];
    if (r.resourceType === "Condition" && datedValue(r, "recordedDate")) return [datedValue(r, "recordedDate"), null];
    return [null, null];
  }

  /** [start, end] calendar dates of a resource (strings or null). */
  function datesOf(r) {
    return datedOf(r).map((d) => (d ? d.date : null));
  }

  function parts(date) {
    const [y, m, d] = date.slice(0, 10).split("-").map(Number);
    return [y, m || 1, d || 1];
  }

  function monthsBetween(origin, date) {
    const [y1, m1, d1] = parts(origin);
    const [y2, m2, d2] = parts(date);
    return (y2 - y1) * 12 + (m2 - m1) + (d2 - d1) / DAYS_PER_MONTH;
  }

  function shiftMonths(date, months) {
    const [y, m, d] = parts(date);
    if (Number.isInteger(months)) {
      const total = y * 12 + (m - 1) + months;
      return new Date(Date.UTC(Math.floor(total / 12), total % 12, d)).toISOString().slice(0, 10);
    }
    const days = Math.round(months * DAYS_PER_MONTH);
    return new Date(Date.UTC(y, m - 1, d + days)).toISOString().slice(0, 10);
  }

  /** Label of a month offset from day 0: "day 0", "day +4", "month +12", "~month +21". */
  function relLabel(m) {
    if (Math.abs(m) < 1) {
      const days = Math.round(m * DAYS_PER_MONTH);
      return "day " + (days > 0 ? "+" : "") + days;
    }
    const rounded = Math.round(m);
    const approx = Math.abs(m - rounded) > 0.05 ? "~" : "";
    return approx + "month " + (rounded > 0 ? "+" : "") + rounded;
  }

  // ---- classification ---------------------------------------------------------------

  function isPathology(report) {
    return list(report.category).some((c) => hasCode(c, "SP") || hasCode(c, "LAB")) ||
      hasCode(report.code, "11529-5");
  }

  function isSecondary(condition) {
    const profiles = list(condition.meta && condition.meta.profile).join(" ");
    return /secondary-cancer/.test(profiles) ||
      list(condition.extension).some((e) => /condition-related|relatedPrimary/.test(e.url || ""));
  }

  function categoryCodes(r) {
    return list(r.category).flatMap((c) => codes(c).concat([c.text || ""]));
  }

  function valueText(obs) {
    if (obs.valueQuantity) {
      const q = obs.valueQuantity;
      return q.value + (q.unit || q.code ? " " + (q.unit || q.code) : "");
    }
    if (obs.valueCodeableConcept) return conceptText(obs.valueCodeableConcept);
    if (obs.valueString) return obs.valueString;
    return "";
  }

  function interpretationFlag(obs) {
    for (const concept of list(obs.interpretation)) {
      for (const coding of list(concept.coding)) {
        if (coding.code) return coding.code;
      }
    }
    return "";
  }

  // ---- building -------------------------------------------------------------------

  function build(resources, patientRef) {
    const index = indexResources(resources);
    const order = new Map(resources.map((r, i) => [refKey(r), i]));
    const linkedNotes = new Map();
    const folded = new Map(); // parent key -> [child resources]
    const addLinked = (target, text) => {
      if (!target || !text) return;
      const key = refKey(target);
      if (!linkedNotes.has(key)) linkedNotes.set(key, []);
      linkedNotes.get(key).push(text);
    };
    const fold = (parent, child) => {
      const key = refKey(parent);
      if (!folded.has(key)) folded.set(key, []);
      folded.get(key).push(child);
    };

    // Links between resources that the placement uses.
    const complicationOf = new Set();
    const reportOf = new Map();
    const courseOfRequest = new Map();
    for (const r of resources) {
      if (r.resourceType === "DocumentReference") {
        for (const enc of list(r.context && r.context.encounter)) {
          const target = resolve(index, enc);
          for (const content of list(r.content)) {
            const att = content.attachment || {};
            if (att.data && /^text\//.test(att.contentType || "")) addLinked(target, decodeBase64(att.data));
          }
        }
      }
      if (r.resourceType === "Procedure") {
        for (const detail of list(r.complicationDetail)) {
          const target = resolve(index, detail);
          if (target) complicationOf.add(refKey(target));
        }
      }
      if (r.resourceType === "DiagnosticReport") {
        for (const result of list(r.result)) {
          const target = resolve(index, result);
          if (target) reportOf.set(refKey(target), r);
        }
      }
      if (r.resourceType === "MedicationRequest") {
        for (const based of list(r.basedOn)) {
          const plan = resolve(index, based);
          if (plan && plan.resourceType === "CarePlan") courseOfRequest.set(refKey(r), plan);
        }
      }
      if (r.resourceType === "CarePlan" && r.encounter) {
        const enc = resolve(index, r.encounter);
        for (const n of list(r.note)) addLinked(enc, n.text);
      }
    }

    const events = [];
    const eventOf = new Map();
    const labs = [];

    function courseOfAdministration(ma) {
      const request = resolve(index, ma.request);
      return request ? courseOfRequest.get(refKey(request)) || null : null;
    }

    function describe(r) {
      const t = r.resourceType;
      if (t === "Observation") {
        const cats = categoryCodes(r);
        if (cats.includes("laboratory") && r.valueQuantity) {
          return { lane: "labs", rank: 2, label: conceptText(r.code) };
        }
        if (reportOf.has(refKey(r))) return { foldInto: reportOf.get(refKey(r)) };
        if (hasCode(r.code, DISEASE_STATUS)) {
          return { lane: "status", rank: 4.5, label: "Disease status: " + valueText(r) };
        }
        const partOf = list(r.partOf).map((p) => resolve(index, p)).find(Boolean);
        if (partOf) return { foldInto: partOf };
        const focus = list(r.focus).map((p) => resolve(index, p)).find(Boolean);
        if (focus && focus.resourceType === "Condition") return { foldInto: focus };
        if (reportOf.has(refKey(r))) return { foldInto: reportOf.get(refKey(r)) };
        const value = valueText(r);
        return { lane: "diagnoses", rank: 0, label: conceptText(r.code) + (value ? ": " + value : "") };
      }
      if (t === "Condition") {
        const label = conceptText(r.code);
        if (complicationOf.has(refKey(r))) return { lane: "adverse", rank: 8, label, css: "complication" };
        if (isSecondary(r)) return { lane: "diagnoses", rank: 4, label, css: "metastasis" };
        const presenting = r.onsetString || categoryCodes(r).includes("encounter-diagnosis");
        return { lane: "diagnoses", rank: presenting ? 0 : 4, label };
      }
      if (t === "DiagnosticReport") {
        return { lane: "imaging", rank: isPathology(r) ? 9 : 3, label: conceptText(r.code) };
      }
      if (t === "Procedure") {
        const parent = list(r.partOf).map((p) => resolve(index, p)).find(Boolean);
        if (parent) return { foldInto: parent };
        const profiles = list(r.meta && r.meta.profile).join(" ");
        if (hasCode(r.code, RT_COURSE) || /radiotherapy/.test(profiles)) {
          return { lane: "radiotherapy", rank: 10, label: conceptText(r.code), css: "course" };
        }
        const label = conceptText(r.code) + (r.status === "not-done" ? " (not done)" : "");
        return { lane: "procedures", rank: r.encounter && !datesOf(r)[0] ? 7 : 6, label };
      }
      if (t === "Encounter") {
        const label = conceptText(list(r.type)[0]) || (r.class && r.class.display) || "Encounter";
        const length = r.length && r.length.value ? " · " + r.length.value + " " + (r.length.code || r.length.unit || "") : "";
        const stay = r.class && r.class.code === "IMP";
        return { lane: "encounters", rank: stay ? 6.5 : 5, label: label + length, css: stay ? "stay" : "" };
      }
      if (t === "CarePlan") {
        if (r.encounter) {
          const enc = resolve(index, r.encounter);
          if (enc) return { foldInto: enc };
        }
        const stopped = r.status === "revoked" ? " (stopped)" : "";
        const label = (r.title || conceptText(list(r.category)[0]) || "Care plan") + stopped;
        return { lane: "systemic", rank: 10, label, css: "course" };
      }
      if (t === "MedicationAdministration") {
        const course = courseOfAdministration(r);
        if (course) return { foldInto: course };
        return { lane: "systemic", rank: 10, label: conceptText(r.medicationCodeableConcept) };
      }
      if (t === "AdverseEvent") {
        return { lane: "adverse", rank: 11, label: conceptText(r.event) || "Adverse event", css: "adverse" };
      }
      return null;
    }

    for (const r of resources) {
      if (patientRef && refKey(r) === patientRef) continue;
      const d = describe(r);
      if (!d) continue;
      if (d.foldInto) {
        fold(d.foldInto, r);
        continue;
      }
      const notes = ownNotes(r).concat(linkedNotes.get(refKey(r)) || []);
      const event = {
        key: refKey(r), resource: r, lane: d.lane, rank: d.rank, label: d.label, css: d.css || "",
        notes, dates: datesOf(r), derived: (datedOf(r)[0] || {}).mark || null,
        stated: statedTimes(notes, r.onsetString ? [r.onsetString] : null),
        start: null, end: null, ongoing: false, after: [], cycles: [], children: [],
      };
      events.push(event);
      eventOf.set(event.key, event);
      if (d.lane === "labs") labs.push(event);
    }
    for (const [key, children] of folded) {
      const parent = eventOf.get(key);
      if (parent) parent.children.push(...children);
    }

    // Day 0: the date a derived date was resolved from (its relative-time mark), else
    // calibrated from a resource that has both a date and an exact stated time.
    let day0 = null;
    let anchor = null;
    for (const r of resources) {
      const mark = datedOf(r).map((d) => d && d.mark).find((m) => m && isDate(m.anchorDate));
      if (mark) {
        day0 = mark.anchorDate.slice(0, 10);
        anchor = mark.anchor;
        break;
      }
    }
    for (const r of day0 ? [] : resources) {
      const start = datesOf(r)[0];
      if (!start || start.length < 10) continue;
      const exact = statedTimes(ownNotes(r)).find((s) => s.q === 0 && s.kind === "start");
      if (exact) {
        day0 = shiftMonths(start, -exact.m);
        break;
      }
    }
    let origin = day0;
    if (!origin) {
      const dated = events.map((e) => e.dates[0]).filter(Boolean).sort();
      origin = dated.length ? dated[0] : null;
    }

    // Own times: a date first, else a stated time (only meaningful with a calibrated day 0).
    for (const e of events) {
      const [startDate, endDate] = e.dates;
      if (startDate && origin) {
        e.start = { m: monthsBetween(origin, startDate), q: 0, date: startDate.slice(0, 10), source: "date" };
      } else if (day0) {
        const s = e.stated.find((x) => x.kind === "start");
        if (s) e.start = { m: s.m, q: s.q, date: null, source: "report", text: s.text };
      }
      if (endDate && origin) e.end = monthsBetween(origin, endDate);
      const r = e.resource;
      if (e.end === null && e.start && e.start.q === 0 && r.length && r.length.code === "d") {
        e.end = e.start.m + r.length.value / DAYS_PER_MONTH;
      }
      if (r.resourceType === "CarePlan" && r.status === "active") e.ongoing = true;
    }

    // Cycles of the courses, from their MedicationAdministrations ("Cycle 2, days 1-3").
    for (const e of events) {
      if (e.resource.resourceType !== "CarePlan") continue;
      const byCycle = new Map();
      for (const child of e.children) {
        if (child.resourceType !== "MedicationAdministration") continue;
        const match = ownNotes(child).join(" ").match(/Cycle (\d+)/i);
        const n = match ? Number(match[1]) : 1;
        if (!byCycle.has(n)) byCycle.set(n, []);
        byCycle.get(n).push(child);
        if (origin) {
          const [, end] = datesOf(child);
          if (end) e.end = Math.max(e.end === null ? -Infinity : e.end, monthsBetween(origin, end));
        }
      }
      e.cycles = [...byCycle.keys()].sort((a, b) => a - b).map((n) => ({ n, administrations: byCycle.get(n) }));
    }

    // Links: what must come after what, and times inherited from linked resources.
    for (const e of events) {
      const r = e.resource;
      if (r.resourceType === "CarePlan") {
        for (const rep of list(r.replaces)) {
          const prev = eventOf.get(refKey(resolve(index, rep) || { resourceType: "", id: "" }));
          if (prev) e.after.push(prev);
        }
        for (const info of list(r.supportingInfo)) {
          const target = resolve(index, info);
          const prev = target && eventOf.get(refKey(target));
          if (prev && target.resourceType === "Procedure") e.after.push(prev);
        }
      }
      if (r.resourceType === "AdverseEvent") {
        for (const suspect of list(r.suspectEntity)) {
          const target = resolve(index, suspect.instance);
          if (!target) continue;
          const course = target.resourceType === "MedicationAdministration" ? courseOfAdministration(target) : target;
          const prev = course && eventOf.get(refKey(course));
          if (prev && !e.after.includes(prev)) e.after.push(prev);
        }
      }
    }
    for (const e of events) {
      // A course that replaces another also follows the adverse events of that one.
      for (const prev of [...e.after]) {
        for (const other of events) {
          if (other.resource.resourceType === "AdverseEvent" && other.after.includes(prev) && other !== e) {
            if (!e.after.includes(other)) e.after.push(other);
          }
        }
      }
    }

    const inherit = (e, from, why) => {
      if (!e.start && from && from.start) {
        e.start = Object.assign({}, from.start, { source: "inferred", why });
      }
    };
    for (let pass = 0; pass < 4; pass++) {
      for (const e of events) {
        if (e.start) continue;
        const r = e.resource;
        if (r.resourceType === "Procedure" && r.encounter) {
          inherit(e, eventOf.get(refKey(resolve(index, r.encounter) || { resourceType: "", id: "" })), "during its encounter");
        }
        if (r.resourceType === "Encounter") {
          const inside = events.filter((o) => {
            const or = o.resource;
            const enc = or.resourceType === "Procedure" ? resolve(index, or.encounter) :
              or.resourceType === "Encounter" ? resolve(index, or.partOf) : null;
            return enc && refKey(enc) === e.key && o.start;
          }).sort((a, b) => a.start.m - b.start.m);
          if (inside.length) inherit(e, inside[0], "contains " + inside[0].label);
        }
        if (r.resourceType === "DiagnosticReport") {
          const results = list(r.result).map((x) => resolve(index, x)).filter(Boolean);
          for (const res of results) {
            const s = statedTimes(ownNotes(res)).find((x) => x.kind === "start");
            if (s && day0 && !e.start) e.start = { m: s.m, q: s.q, date: null, source: "report", text: s.text };
          }
        }
        if (e.after.length) {
          const placed = e.after.find((p) => p.start);
          if (placed) inherit(e, placed, "follows " + placed.label);
        }
      }
    }

    // Bands: exact points (q = 0) are anchors; "before X"/"after X" sit half-way to the
    // neighbouring anchor, so a bounded band ("before month +1") precedes an open one.
    const anchors = [...new Set(events.filter((e) => e.start && e.start.q === 0).map((e) => round(e.start.m)))]
      .sort((a, b) => a - b);
    const bandKey = (t) => {
      if (t.q === 0) return round(t.m);
      if (t.q < 0) {
        const prev = anchors.filter((a) => a < t.m).pop();
        return prev === undefined ? t.m - 1 : (prev + t.m) / 2;
      }
      const next = anchors.find((a) => a > t.m);
      return next === undefined ? t.m + 1 : (t.m + next) / 2;
    };
    const placed = events.filter((e) => e.start);
    const undated = events.filter((e) => !e.start).sort((a, b) => order.get(a.key) - order.get(b.key));
    const bands = new Map();
    for (const e of placed) {
      const id = e.start.q + ":" + round(e.start.m);
      if (!bands.has(id)) bands.set(id, { id, key: bandKey(e.start), q: e.start.q, m: round(e.start.m), events: [], date: null });
      const band = bands.get(id);
      band.events.push(e);
      if (e.start.date && e.start.source === "date" && (!band.date || e.start.date < band.date)) band.date = e.start.date;
      e.band = band;
    }
    const bandList = [...bands.values()].sort((a, b) => a.key - b.key);
    for (const band of bandList) band.label = bandLabel(band, anchors, day0);

    // Depth of each event in its band: one more than what it must follow in the same band.
    const depth = new Map();
    const depthOf = (e, seen) => {
      if (depth.has(e)) return depth.get(e);
      if (seen.has(e)) return 0;
      seen.add(e);
      let d = 0;
      for (const prev of e.after) {
        if (prev.band === e.band) d = Math.max(d, depthOf(prev, seen) + 1);
      }
      depth.set(e, d);
      return d;
    };
    const columns = [];
    for (const band of bandList) {
      const steps = [...new Set(band.events.map((e) => depthOf(e, new Set()) * 100 + e.rank))].sort((a, b) => a - b);
      band.first = columns.length;
      for (const step of steps) columns.push({ band, step, key: band.key });
      band.last = columns.length - 1;
      for (const e of band.events) e.column = band.first + steps.indexOf(depth.get(e) * 100 + e.rank);
    }
    for (const e of placed) {
      let last = e.column;
      if (e.ongoing) last = columns.length - 1;
      else if (e.end !== null) {
        for (let c = e.column; c < columns.length; c++) if (columns[c].key <= e.end + 1e-9) last = c;
      }
      e.lastColumn = last;
      e.startKey = columns[e.column].key;
      e.timeText = timeText(e, day0);
      e.shortTime = shortTime(e, day0);
    }
    for (const e of undated) {
      e.timeText = "no time in the record";
      e.shortTime = "no time";
    }

    // Rows inside each lane: greedy packing of overlapping events.
    const lanes = LANES.map((lane) => {
      const laneEvents = placed.filter((e) => e.lane === lane.id).sort((a, b) => a.column - b.column || order.get(a.key) - order.get(b.key));
      const rowEnds = [];
      for (const e of laneEvents) {
        let row = rowEnds.findIndex((end) => end < e.column);
        if (row < 0) { row = rowEnds.length; rowEnds.push(-1); }
        rowEnds[row] = e.lastColumn;
        e.row = row;
      }
      return Object.assign({}, lane, { events: laneEvents, rows: Math.max(1, rowEnds.length) });
    }).filter((lane) => lane.events.length);

    return { day0, anchor, origin, bands: bandList, columns, lanes, events, undated, labs, index };
  }

  function round(m) {
    return Math.round(m * 1000) / 1000;
  }

  function bandLabel(band, anchors, day0) {
    if (band.q === 0) {
      const when = day0 ? relLabel(band.m) : "";
      return { main: band.date || when, sub: band.date && day0 ? when : (band.date ? "" : "no date in the record") };
    }
    if (band.q < 0) {
      const prev = anchors.filter((a) => a < band.m).pop();
      return { main: "before " + relLabel(band.m), sub: (prev !== undefined ? "after " + relLabel(prev) + " · " : "") + "no date in the record" };
    }
    const next = anchors.find((a) => a > band.m);
    return { main: "after " + relLabel(band.m), sub: (next !== undefined ? "before " + relLabel(next) + " · " : "") + "no date in the record" };
  }

  /** "month +17 from day 0": a derived date's relative time as the record states it. */
  function recordedTime(mark) {
    return /\bday 0\b/.test(mark.time) ? mark.time : mark.time + " from day 0";
  }

  function shortTime(e, day0) {
    const s = e.start;
    if (s.source === "date" && e.derived) return e.derived.time + " → " + s.date;
    if (s.source === "date") return s.date;
    return (s.q === 0 ? "" : s.q < 0 ? "before " : "after ") + relLabel(s.m) + (s.source === "inferred" ? " (placed)" : "");
  }

  function timeText(e, day0) {
    const s = e.start;
    if (s.source === "date" && e.derived) {
      const m = e.derived;
      const zero = m.anchorDate ? "day 0 = " + m.anchorDate + (m.anchor ? ", " + m.anchor : "") : "";
      return s.date + " — derived date: " + recordedTime(m) + " in the record" + (zero ? " (" + zero + ")" : "");
    }
    if (s.source === "date") return s.date + (day0 ? " (" + relLabel(s.m) + ")" : "");
    const stated = s.q === 0 ? relLabel(s.m) : (s.q < 0 ? "before " : "after ") + relLabel(s.m);
    if (s.source === "report") return stated + " (no date in the record)";
    return stated + " (no date in the record; placed: " + s.why + ")";
  }

  return { build, LANES, relLabel, statedTimes, monthsBetween, interpretationFlag, valueText, conceptText, DAR, derivedMark };
})();
