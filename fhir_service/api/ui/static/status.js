/* /ui/status: sync runs (GET /sync/runs when the server lists them) and export jobs. */
"use strict";

(function () {
  const { fhirGet, el, outcomeText } = window.FS;
  const syncState = document.getElementById("sync-state");
  const table = document.getElementById("sync-runs");
  const lookup = document.getElementById("run-lookup");

  function counts(value) {
    if (!value || typeof value !== "object") return "—";
    const pairs = Object.entries(value);
    return pairs.length ? pairs.map(([k, v]) => k + ": " + (typeof v === "object" ? JSON.stringify(v) : v)).join(", ") : "—";
  }

  function runRow(run) {
    const errors = run.errors || [];
    return el("tr", { class: "run status-" + run.status },
      el("td", { class: "num" }, String(run.id)), el("td", {}, run.direction || ""),
      el("td", { class: "mono small" }, run.remote || ""),
      el("td", {}, el("span", { class: "badge status-" + run.status }, run.status || "")),
      el("td", { class: "small" }, run.started || ""), el("td", { class: "small" }, run.ended || "running"),
      el("td", { class: "small" }, counts(run.counts)),
      el("td", { class: "small" }, errors.length ? el("ul", {}, ...errors.slice(0, 5).map((e) =>
        el("li", {}, typeof e === "string" ? e : JSON.stringify(e)))) : "none"));
  }

  function showRuns(runs) {
    const body = table.querySelector("tbody");
    body.replaceChildren(...runs.map(runRow));
    table.hidden = !runs.length;
  }

  async function loadSync() {
    const answer = await fhirGet("/sync/runs");
    if (answer.status === 200 && answer.body) {
      const runs = Array.isArray(answer.body) ? answer.body : answer.body.runs || [];
      syncState.textContent = runs.length ? runs.length + " recent sync run" + (runs.length > 1 ? "s" : "") : "No sync runs yet.";
      showRuns(runs);
      return;
    }
    const probe = await fhirGet("/sync/runs/0");
    if (probe.status === 404 && probe.body && /sync run/i.test(outcomeText(probe.body, ""))) {
      syncState.textContent = "This server records sync runs but does not list them; look one up by its number.";
      lookup.hidden = false;
      return;
    }
    syncState.textContent = "This server has no sync endpoint: no sync runs to show.";
  }

  lookup.addEventListener("submit", async (event) => {
    event.preventDefault();
    const id = document.getElementById("run-id").value.trim();
    const answer = await fhirGet("/sync/runs/" + encodeURIComponent(id));
    if (answer.status === 200 && answer.body) {
      syncState.textContent = "Sync run " + id + ":";
      showRuns([answer.body]);
    } else {
      syncState.textContent = "Sync run " + id + ": " + outcomeText(answer.body, "HTTP " + answer.status);
      showRuns([]);
    }
  });

  async function loadExports() {
    const exportState = document.getElementById("export-state");
    const metadata = await fhirGet("metadata");
    const rest = ((metadata.body && metadata.body.rest) || [])[0] || {};
    const operations = (rest.operation || []).concat(...(rest.resource || []).map((r) => r.operation || []));
    const exportable = operations.some((op) => op.name === "export");
    if (!exportable) {
      exportState.textContent = "No export jobs: this server does not offer Bulk Data $export (it is not in its CapabilityStatement).";
      return;
    }
    const jobs = await fhirGet("/export/jobs");
    if (jobs.status === 200 && jobs.body) {
      const list = Array.isArray(jobs.body) ? jobs.body : jobs.body.jobs || [];
      exportState.textContent = list.length ? list.length + " export jobs" : "No export jobs yet.";
      exportState.after(el("ul", { class: "jobs" }, ...list.map((job) =>
        el("li", {}, [job.id, job.status, job.progress, counts(job.counts)].filter(Boolean).join(" · ")))));
      return;
    }
    exportState.textContent = "No export jobs: this server offers $export but does not list its jobs.";
  }

  loadSync().catch((err) => { syncState.textContent = "Could not read sync runs: " + err.message; });
  loadExports().catch((err) => { document.getElementById("export-state").textContent = "Could not read export jobs: " + err.message; });
})();
