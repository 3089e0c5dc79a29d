/* /ui: the patients of the server, from search or else the Patient history. */
"use strict";

(function () {
  const { allEntries, el, outcomeText } = window.FS;
  const state = document.getElementById("patients-state");
  const list = document.getElementById("patients");

  function patientName(patient) {
    const name = (patient.name || [])[0];
    if (name && (name.text || name.family || name.given)) {
      return name.text || [...(name.given || []), name.family || ""].join(" ").trim();
    }
    return "Patient (name not recorded)";
  }

  function latest(entries) {
    const byId = new Map();
    for (const entry of entries) {
      const resource = entry.resource;
      const id = resource ? resource.id : (entry.request && entry.request.url || "").split("/")[1];
      if (!id || byId.has(id)) continue;
      const deleted = entry.request && entry.request.method === "DELETE";
      byId.set(id, deleted ? null : resource);
    }
    return [...byId.values()].filter((r) => r && r.resourceType === "Patient");
  }

  async function load() {
    let answer = await allEntries("Patient?_count=100", 20);
    let patients;
    if (answer.ok) {
      patients = answer.entries.map((e) => e.resource).filter((r) => r && r.resourceType === "Patient");
    } else {
      answer = await allEntries("Patient/_history?_count=100", 20);
      if (!answer.ok) {
        state.textContent = "The server did not list patients: " + outcomeText(answer.body, "HTTP " + answer.status);
        return;
      }
      patients = latest(answer.entries);
    }
    if (!patients.length) {
      state.textContent = "No patients yet. Load a case with `fhir-service load` or run `fhir-service demo`.";
      return;
    }
    state.textContent = patients.length === 1 ? "1 patient" : patients.length + " patients";
    for (const patient of patients) {
      const facts = [patient.gender, patient.birthDate ? "born " + patient.birthDate : null]
        .filter(Boolean).join(", ");
      list.append(el("li", { class: "card" },
        el("a", { href: "/ui/patients/" + encodeURIComponent(patient.id), class: "patient-link" }, patientName(patient)),
        el("p", { class: "muted" }, facts || "no gender or birth date recorded"),
        el("p", { class: "muted mono" }, "Patient/" + patient.id)));
    }
  }

  load().catch((err) => { state.textContent = "Could not load patients: " + err.message; });
})();
