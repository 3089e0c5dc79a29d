/* /ui/validate: POST the pasted or uploaded JSON to $validate and show every issue in place. */
"use strict";

(function () {
  const { base, el, authHeaders } = window.FS;
  const LINE = "http://hl7.org/fhir/StructureDefinition/operationoutcome-issue-line";
  const COLUMN = "http://hl7.org/fhir/StructureDefinition/operationoutcome-issue-col";
  const form = document.getElementById("validate-form");
  const source = document.getElementById("source");
  const file = document.getElementById("file");

  file.addEventListener("change", async () => {
    const chosen = file.files && file.files[0];
    if (chosen) source.value = await chosen.text();
  });

  /** Line of every JSON value by its path ("entry[2].resource.status"); null if not JSON. */
  function linesByPath(text) {
    const lines = new Map();
    let i = 0;
    let line = 1;
    const ws = () => {
      while (i < text.length && /\s/.test(text[i])) {
        if (text[i] === "\n") line += 1;
        i += 1;
      }
    };
    const string = () => {
      let out = "";
      i += 1;
      while (i < text.length && text[i] !== '"') {
        if (text[i] === "\\") { out += text[i + 1]; i += 2; continue; }
        out += text[i];
        i += 1;
      }
      i += 1;
      return out;
    };
    const value = (path) => {
      ws();
      lines.set(path, line);
      const c = text[i];
      if (c === "{") {
        i += 1; ws();
        while (i < text.length && text[i] !== "}") {
          ws();
          const keyLine = line;
          const key = string();
          ws(); i += 1; // colon
          const child = path ? path + "." + key : key;
          value(child);
          lines.set(child, keyLine);
          ws();
          if (text[i] === ",") i += 1;
          ws();
        }
        i += 1;
      } else if (c === "[") {
        i += 1; ws();
        let n = 0;
        while (i < text.length && text[i] !== "]") {
          value(path + "[" + n + "]");
          n += 1; ws();
          if (text[i] === ",") i += 1;
          ws();
        }
        i += 1;
      } else if (c === '"') {
        string();
      } else {
        while (i < text.length && !/[\s,}\]]/.test(text[i])) i += 1;
      }
    };
    try {
      JSON.parse(text);
    } catch (err) {
      return null;
    }
    value("");
    return lines;
  }

  /** The line of a FHIRPath location such as Bundle.entry[2].resource/*Condition/c1*\/.code. */
  function lineOf(expression, lines) {
    if (!lines || !expression) return null;
    let path = expression.replace(/\/\*.*?\*\//g, "").replace(/\.ofType\([^)]*\)/g, "").replace(/\.where\([^)]*\)/g, "");
    path = path.split(".").slice(1).join(".");
    while (path) {
      if (lines.has(path)) return lines.get(path);
      const cut = Math.max(path.lastIndexOf("."), path.lastIndexOf("["));
      if (cut <= 0) break;
      path = path.slice(0, cut);
    }
    return lines.get("") || null;
  }

  function extensionValue(issue, url) {
    const ext = (issue.extension || []).find((e) => e.url === url);
    return ext ? ext.valueInteger : null;
  }

  function render(text, outcome, status) {
    const result = document.getElementById("result");
    const body = document.querySelector("#issues tbody");
    const listing = document.getElementById("listing");
    const lines = linesByPath(text);
    const issues = (outcome && outcome.issue) || [];
    const problems = issues.filter((i) => i.severity === "error" || i.severity === "fatal");
    const warnings = issues.filter((i) => i.severity === "warning");
    const verdict = document.getElementById("verdict");
    if (status !== 200) {
      verdict.textContent = "Not valid: the server could not validate this input (HTTP " + status + ")";
      verdict.className = "verdict bad";
    } else if (problems.length) {
      verdict.textContent = "Not valid: " + problems.length + " error" + (problems.length > 1 ? "s" : "") +
        (warnings.length ? ", " + warnings.length + " warning" + (warnings.length > 1 ? "s" : "") : "");
      verdict.className = "verdict bad";
    } else {
      verdict.textContent = "Valid" + (warnings.length ? " with " + warnings.length + " warning" + (warnings.length > 1 ? "s" : "") : ": no errors");
      verdict.className = "verdict good";
    }
    body.replaceChildren();
    const marked = new Map();
    issues.forEach((issue, n) => {
      const expression = (issue.expression || issue.location || []).join(", ");
      let line = extensionValue(issue, LINE);
      const column = extensionValue(issue, COLUMN);
      if (line === null) line = lineOf((issue.expression || issue.location || [])[0], lines);
      if (line !== null) {
        const worst = marked.get(line);
        if (!worst || worst === "information" || (worst === "warning" && issue.severity !== "information")) marked.set(line, issue.severity);
      }
      body.append(el("tr", { class: "issue sev-" + issue.severity, dataset: { line: line === null ? "" : String(line) } },
        el("td", {}, el("span", { class: "severity sev-" + issue.severity }, issue.severity)),
        el("td", { class: "mono small location" }, expression || "—"),
        el("td", { class: "num" }, line === null ? "—" : el("a", { href: "#L" + line }, String(line) + (column ? ":" + column : ""))),
        el("td", { class: "message" }, issue.diagnostics || issue.code || "")));
    });
    if (!issues.length) body.append(el("tr", {}, el("td", { colspan: "4" }, "No issues.")));
    listing.replaceChildren();
    text.split("\n").forEach((content, n) => {
      const number = n + 1;
      const severity = marked.get(number);
      listing.append(el("span", { class: "line" + (severity ? " marked sev-" + severity : ""), id: "L" + number },
        el("span", { class: "ln", "aria-hidden": "true" }, String(number)), content + "\n"));
    });
    result.hidden = false;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = source.value;
    const button = document.getElementById("validate-button");
    button.disabled = true;
    try {
      const response = await fetch(base + "/$validate", {
        method: "POST",
        headers: authHeaders({ "Content-Type": "application/fhir+json", Accept: "application/fhir+json" }),
        body: text,
      });
      let outcome = null;
      try { outcome = await response.json(); } catch (err) { outcome = null; }
      render(text, outcome, response.status);
    } finally {
      button.disabled = false;
    }
  });
})();
