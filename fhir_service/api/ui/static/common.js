/* Shared helpers of the /ui pages: FHIR requests over HTTP and DOM building. */
"use strict";

window.FS = (function () {
  const base = document.body.dataset.fhirBase || "/fhir";
  const TOKEN_KEY = "fhir-service.access-token";

  /** The access token entered in the header form (smart mode), kept for this tab only. */
  function accessToken() {
    try { return window.sessionStorage.getItem(TOKEN_KEY) || ""; } catch (err) { return ""; }
  }

  /** `headers` plus the bearer token, when one was entered. */
  function authHeaders(headers) {
    const token = accessToken();
    return token ? Object.assign({}, headers, { Authorization: "Bearer " + token }) : headers;
  }

  /** The header form of smart mode: use or forget a token, then load the page again. */
  function tokenForm() {
    const form = document.getElementById("token-form");
    if (!form) return;
    const input = document.getElementById("token-input");
    const state = document.getElementById("token-state");
    state.textContent = accessToken() ? "token in use" : "no token";
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const token = input.value.trim();
      if (!token) return;
      window.sessionStorage.setItem(TOKEN_KEY, token);
      window.location.reload();
    });
    document.getElementById("token-forget").addEventListener("click", () => {
      window.sessionStorage.removeItem(TOKEN_KEY);
      window.location.reload();
    });
  }
  tokenForm();

  /** GET a FHIR URL (relative to the base unless absolute); resolves {status, body}. */
  async function fhirGet(path) {
    const url = path.startsWith("http") || path.startsWith("/") ? path : base + "/" + path;
    const response = await fetch(url, { headers: authHeaders({ Accept: "application/fhir+json" }) });
    let body = null;
    const text = await response.text();
    if (text) {
      try { body = JSON.parse(text); } catch (err) { body = null; }
    }
    return { status: response.status, body: body };
  }

  /** Every entry of a Bundle and the Bundles its `next` links lead to (at most `maxPages`). */
  async function allEntries(path, maxPages) {
    const entries = [];
    let next = path;
    let pages = 0;
    while (next && pages < (maxPages || 50)) {
      const answer = await fhirGet(next);
      if (answer.status !== 200 || !answer.body || answer.body.resourceType !== "Bundle") {
        if (pages === 0) return { ok: false, status: answer.status, body: answer.body, entries: [] };
        break;
      }
      pages += 1;
      entries.push(...(answer.body.entry || []));
      const link = (answer.body.link || []).find((l) => l.relation === "next");
      next = link ? sameOrigin(link.url) : null;
    }
    return { ok: true, status: 200, entries: entries };
  }

  /** A link URL reduced to path and query, so requests stay on this origin. */
  function sameOrigin(url) {
    try {
      const parsed = new URL(url, window.location.href);
      return parsed.pathname + parsed.search;
    } catch (err) {
      return null;
    }
  }

  /** The diagnostics of an OperationOutcome body, or a fallback sentence. */
  function outcomeText(body, fallback) {
    if (body && body.resourceType === "OperationOutcome" && body.issue) {
      return body.issue.map((i) => i.diagnostics || i.code).join("; ");
    }
    return fallback;
  }

  /** Create an element: el("p", {class: "x", text: "y"}, child, …). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  /** Short names of well-known code systems. */
  const SYSTEMS = {
    "http://snomed.info/sct": "SNOMED CT",
    "http://loinc.org": "LOINC",
    "http://www.nlm.nih.gov/research/umls/rxnorm": "RxNorm",
    "http://hl7.org/fhir/sid/icd-10-cm": "ICD-10-CM",
    "http://terminology.hl7.org/CodeSystem/icd-o-3": "ICD-O-3",
    "http://www.whocc.no/atc": "ATC",
    "http://unitsofmeasure.org": "UCUM",
  };

  function systemName(system) {
    if (!system) return "";
    if (SYSTEMS[system]) return SYSTEMS[system];
    const parts = system.split("/");
    return parts[parts.length - 1] || system;
  }

  /** Text of a CodeableConcept: its text, else the first display, else the first code. */
  function conceptText(concept) {
    if (!concept) return "";
    if (concept.text) return concept.text;
    const coding = (concept.coding || [])[0];
    return coding ? coding.display || coding.code || "" : "";
  }

  return { base, fhirGet, allEntries, outcomeText, el, systemName, conceptText, sameOrigin, authHeaders };
})();
