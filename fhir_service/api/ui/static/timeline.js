/* /ui/patients/{id}: fetch the patient's record over the FHIR API and draw the timeline. */
"use strict";

(function () {
  const { fhirGet, allEntries, el, outcomeText, systemName, conceptText } = window.FS;
  const Model = window.TimelineModel;
  const main = document.getElementById("main");
  const patientId = main.dataset.patientId;
  const patientRef = "Patient/" + patientId;
  const state = document.getElementById("timeline-state");
  const TYPES = ["Condition", "Observation", "DiagnosticReport", "Procedure", "Encounter", "CarePlan",
    "MedicationRequest", "MedicationAdministration", "AdverseEvent", "DocumentReference", "Specimen"];

  function refersToPatient(resource) {
    const text = JSON.stringify([resource.subject, resource.patient, resource.context]);
    return text.includes('"' + patientRef + '"') || text.includes("/" + patientRef + '"');
  }

  function newestVersions(entries) {
    const byId = new Map();
    for (const entry of entries) {
      const resource = entry.resource;
      const url = (entry.request && entry.request.url) || "";
      const id = resource ? resource.id : url.split("/")[1];
      if (!id || byId.has(id)) continue;
      byId.set(id, entry.request && entry.request.method === "DELETE" ? null : resource);
    }
    return [...byId.values()].filter(Boolean);
  }

  /** $everything, else type-level search, else type history filtered by subject. */
  async function record() {
    const everything = await allEntries("Patient/" + encodeURIComponent(patientId) + "/$everything?_count=500", 40);
    if (everything.ok) {
      return { how: "Patient/$everything", resources: everything.entries.map((e) => e.resource).filter(Boolean) };
    }
    const resources = [];
    const ways = new Set();
    for (const type of TYPES) {
      let answer = await allEntries(type + "?patient=" + encodeURIComponent(patientId) + "&_count=500", 20);
      if (answer.ok) ways.add("search by patient");
      if (!answer.ok) {
        answer = await allEntries(type + "?subject=" + encodeURIComponent(patientRef) + "&_count=500", 20);
        if (answer.ok) ways.add("search by subject");
      }
      if (answer.ok) {
        resources.push(...answer.entries.map((e) => e.resource).filter((r) => r && r.resourceType === type));
        continue;
      }
      const history = await allEntries(type + "/_history?_count=1000", 50);
      if (!history.ok) continue;
      ways.add("type history filtered by subject");
      resources.push(...newestVersions(history.entries).filter(refersToPatient));
    }
    return { how: [...ways].join(", ") || "nothing answered", resources };
  }

  // ---- drawing ------------------------------------------------------------------------

  function place(node, column, lastColumn, row) {
    node.style.gridColumn = (column + 2) + " / " + (lastColumn + 3);
    node.style.gridRow = String(row);
  }

  function eventNode(e) {
    const classes = ["event", "lane-" + e.lane, e.css];
    if (!e.start || e.start.source !== "date") classes.push("undated");
    else if (e.derived) classes.push("derived");
    const bar = e.css === "course" || e.css === "stay" || e.lastColumn > e.column;
    if (bar) classes.push("bar");
    if (e.ongoing) classes.push("ongoing");
    const node = el("button", {
      type: "button", class: classes.filter(Boolean).join(" "),
      dataset: { ref: e.key, lane: e.lane, label: e.label },
      title: e.label + " — " + e.timeText,
      onclick: () => showDetail(e),
    }, el("span", { class: "event-label" }, e.label), el("span", { class: "event-time" }, e.shortTime));
    if (e.cycles.length) {
      const planned = plannedCycles(e);
      const count = Math.max(planned, e.cycles.length);
      const strip = el("span", { class: "cycles", "aria-label": count + " cycles" });
      for (let n = 1; n <= count; n++) {
        const given = e.cycles.find((c) => c.n === n);
        strip.append(el("span", { class: "cycle" + (given ? "" : " planned") }, "C" + n));
      }
      node.append(strip);
    }
    if (e.ongoing) node.append(el("span", { class: "ongoing-mark", "aria-label": "ongoing" }, "▸ ongoing"));
    return node;
  }

  function plannedCycles(e) {
    const match = e.notes.join(" ").match(/(\d+) cycles/);
    return match ? Number(match[1]) : 0;
  }

  function draw(model) {
    const grid = document.getElementById("timeline");
    grid.replaceChildren();
    grid.style.gridTemplateColumns = "var(--lane-width) repeat(" + model.columns.length + ", var(--column-width))";
    grid.append(el("div", { class: "corner" }, "Time"));
    const header = grid.lastChild;
    header.style.gridColumn = "1";
    header.style.gridRow = "1";
    for (const band of model.bands) {
      const cell = el("div", { class: "band band-q" + band.q, role: "listitem", dataset: { band: band.id } },
        el("span", { class: "band-main" }, band.label.main),
        band.label.sub ? el("span", { class: "band-sub" }, band.label.sub) : null);
      place(cell, band.first, band.last, 1);
      grid.append(cell);
    }
    let row = 2;
    for (const lane of model.lanes) {
      const label = el("div", { class: "lane-label lane-" + lane.id }, lane.label);
      label.style.gridColumn = "1";
      label.style.gridRow = row + " / " + (row + lane.rows);
      grid.append(label);
      const background = el("div", { class: "lane-bg lane-" + lane.id });
      background.style.gridColumn = "2 / " + (model.columns.length + 2);
      background.style.gridRow = row + " / " + (row + lane.rows);
      grid.append(background);
      for (const e of lane.events) {
        const node = eventNode(e);
        place(node, e.column, e.lastColumn, row + e.row);
        grid.append(node);
      }
      row += lane.rows;
    }
    const undated = document.getElementById("undated");
    undated.replaceChildren();
    for (const e of model.undated) {
      const node = eventNode(e);
      undated.append(el("li", {}, node));
    }
    document.getElementById("undated-section").hidden = !model.undated.length;
    drawLabs(model);
  }

  function drawLabs(model) {
    const body = document.querySelector("#labs tbody");
    body.replaceChildren();
    for (const e of model.labs) {
      const obs = e.resource;
      const flag = Model.interpretationFlag(obs);
      const code = (obs.code.coding || [])[0];
      body.append(el("tr", { dataset: { ref: e.key } },
        el("td", {}, el("button", { type: "button", class: "link", onclick: () => showDetail(e) }, conceptText(obs.code)),
          code ? el("span", { class: "muted small" }, " " + systemName(code.system) + " " + code.code) : null),
        el("td", { class: "num" }, Model.valueText(obs)),
        el("td", {}, flag ? el("span", { class: "flag flag-" + flag, title: conceptText((obs.interpretation || [])[0]) }, flag) : "—"),
        el("td", { class: "small" }, e.timeText)));
      for (const note of (obs.note || []).map((n) => n.text).filter((t) => /^corrected/i.test(t))) {
        body.append(el("tr", { class: "lab-note" }, el("td", { colspan: "4", class: "small muted" }, note)));
      }
    }
    if (!model.labs.length) body.append(el("tr", {}, el("td", { colspan: "4", class: "muted" }, "No laboratory values in the record.")));
  }

  // ---- detail -------------------------------------------------------------------------

  function codedConcepts(value, path, out) {
    if (Array.isArray(value)) {
      value.forEach((item) => codedConcepts(item, path, out));
    } else if (value && typeof value === "object") {
      if (Array.isArray(value.coding)) {
        for (const coding of value.coding) out.push({ path, coding, text: value.text || "" });
      }
      for (const [key, child] of Object.entries(value)) {
        if (key !== "coding" && key !== "text" || (key === "text" && typeof child === "object")) {
          if (key === "text" && child && child.div) continue;
          codedConcepts(child, path ? path + "." + key : key, out);
        }
      }
    }
    return out;
  }

  function showDetail(e, resource) {
    const r = resource || e.resource;
    const panel = document.getElementById("detail");
    document.querySelectorAll(".event.selected").forEach((n) => n.classList.remove("selected"));
    if (!resource) document.querySelectorAll('.event[data-ref="' + CSS.escape(e.key) + '"]').forEach((n) => n.classList.add("selected"));
    const concepts = codedConcepts(r, r.resourceType, []);
    const table = el("table", { class: "concepts" },
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Element"), el("th", { scope: "col" }, "System"),
        el("th", { scope: "col" }, "Code"), el("th", { scope: "col" }, "Display"))),
      el("tbody", {}, ...concepts.map((c) => el("tr", {},
        el("td", { class: "mono small" }, c.path), el("td", {}, systemName(c.coding.system)),
        el("td", { class: "mono" }, c.coding.code || ""), el("td", {}, c.coding.display || c.text || "")))));
    const children = resource ? [] : e.children;
    const cycles = resource ? [] : e.cycles;
    const parts = [
      el("h2", { id: "detail-title" }, resource ? r.resourceType : e.label),
      el("p", { class: "muted mono" }, r.resourceType + "/" + r.id),
      resource ? el("button", { type: "button", class: "link", onclick: () => showDetail(e) }, "← back to " + e.label) : el("p", {}, el("strong", {}, "When: "), e.timeText),
      !resource && e.notes.length ? el("ul", { class: "notes" }, ...e.notes.map((n) => el("li", {}, n))) : null,
      cycles.length ? el("div", {}, el("h3", {}, "Cycles"), el("ul", { class: "related" }, ...cycles.map((c) =>
        el("li", {}, "Cycle " + c.n + ": ", ...c.administrations.map((a) => el("button", {
          type: "button", class: "link", onclick: () => showDetail(e, a) },
        conceptText(a.medicationCodeableConcept) + " "))))))
        : null,
      children.length ? el("div", {}, el("h3", {}, "Linked resources"), el("ul", { class: "related" }, ...children
        .filter((c) => c.resourceType !== "MedicationAdministration")
        .map((c) => el("li", {}, el("button", { type: "button", class: "link", onclick: () => showDetail(e, c) },
          c.resourceType + ": " + childLabel(c)))))) : null,
      el("h3", {}, "Coded concepts"),
      concepts.length ? table : el("p", { class: "muted" }, "No coded concepts (text only)."),
      el("h3", {}, "Resource"),
      el("pre", { class: "json", id: "resource-json" }, JSON.stringify(r, null, 2))];
    panel.replaceChildren(...parts.filter(Boolean));
    if (window.matchMedia("(max-width: 60rem)").matches) panel.scrollIntoView({ behavior: "smooth", block: "start" });
  }

  function childLabel(r) {
    const concept = r.code || r.medicationCodeableConcept || (r.type && !Array.isArray(r.type) ? r.type : null);
    const value = r.resourceType === "Observation" ? Model.valueText(r) : "";
    return (conceptText(concept) || r.title || r.id) + (value ? ": " + value : "");
  }

  // ---- start --------------------------------------------------------------------------

  async function start() {
    const patient = await fhirGet("Patient/" + encodeURIComponent(patientId));
    if (patient.status !== 200 || !patient.body) {
      state.textContent = "This patient could not be read: " + outcomeText(patient.body, "HTTP " + patient.status);
      state.classList.add("error");
      return;
    }
    const p = patient.body;
    const { how, resources } = await record();
    const model = Model.build(resources, patientRef);
    window.__timeline = model;
    const primary = resources.find((r) => r.resourceType === "Condition" && /primary-cancer/.test(((r.meta || {}).profile || []).join(" ")));
    if (primary) document.getElementById("patient-title").textContent = conceptText(primary.code);
    state.textContent = resources.length + " resources read (" + how + "); " + model.events.length +
      " events" + (model.day0 ? "; day 0 = " + model.day0 : "") + ".";
    draw(model);
    const age = model.events.find((e) => /^Age at presentation/.test(e.label));
    document.getElementById("patient-summary").textContent = [
      p.gender ? p.gender[0].toUpperCase() + p.gender.slice(1) : null,
      age ? age.label.toLowerCase() : null, "Patient/" + p.id].filter(Boolean).join(" · ");
    main.dataset.ready = "true";
  }

  start().catch((err) => {
    state.textContent = "The timeline could not be drawn: " + err.message;
    state.classList.add("error");
  });
})();
