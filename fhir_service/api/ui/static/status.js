/* /ui/status: sync runs (GET /sync/runs when the server lists them) and the jobs of every kind (GET /jobs, DELETE /jobs/{id}). */
"use strict";

(function () {
  const { fhirGet, el, outcomeText, authHeaders } = window.FS;
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

  const jobsState = document.getElementById("jobs-state");
  const jobsTable = document.getElementById("jobs");

  async function cancelJob(job) {
    const response = await fetch("/jobs/" + encodeURIComponent(job.id), { method: "DELETE", headers: authHeaders({}) });
    jobsState.textContent = response.status === 202 ? "Job " + job.id + " cancelled." : "Job " + job.id + " could not be cancelled (HTTP " + response.status + ").";
    await loadJobs();
  }

  function jobRow(job) {
    const active = job.state === "queued" || job.state === "running";
    const cancel = active ? el("button", { type: "button", class: "small" }, "Cancel") : "";
    if (cancel) cancel.addEventListener("click", () => cancelJob(job).catch((err) => { jobsState.textContent = err.message; }));
    return el("tr", { class: "job status-" + job.state },
      el("td", {}, job.kind), el("td", { class: "mono small" }, job.id),
      el("td", {}, el("span", { class: "badge status-" + job.state }, job.state)),
      el("td", { class: "small" }, job.progress || ""), el("td", { class: "small" }, job.created || ""),
      el("td", { class: "small" }, job.finished || ""), el("td", { class: "small" }, job.error || ""),
      el("td", {}, cancel));
  }

  async function loadJobs() {
    const answer = await fhirGet("/jobs");
    const body = jobsTable.querySelector("tbody");
    if (answer.status === 200 && answer.body && Array.isArray(answer.body.jobs)) {
      const jobs = answer.body.jobs;
      if (!/cancelled/.test(jobsState.textContent)) {
        jobsState.textContent = jobs.length ? jobs.length + " recent job" + (jobs.length > 1 ? "s" : "") + " (export, reindex, sync)" : "No jobs yet.";
      }
      body.replaceChildren(...jobs.map(jobRow));
      jobsTable.hidden = !jobs.length;
      return;
    }
    jobsState.textContent = "This server does not list its jobs: " + outcomeText(answer.body, "HTTP " + answer.status);
    jobsTable.hidden = true;
  }

  loadSync().catch((err) => { syncState.textContent = "Could not read sync runs: " + err.message; });
  loadJobs().catch((err) => { jobsState.textContent = "Could not read the jobs: " + err.message; });
})();
