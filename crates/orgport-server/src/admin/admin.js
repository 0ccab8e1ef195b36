// orgport's admin page: every call is a fetch with the token from sessionStorage as a bearer
// token; nothing is written into the page as HTML, only as text.
"use strict";

const KEY = "orgport-token";
const $ = (id) => document.getElementById(id);
let polling = null;

function token() {
  return sessionStorage.getItem(KEY);
}

async function api(method, path, body) {
  const response = await fetch(path, { method, body, headers: { Authorization: "Bearer " + token() } });
  if (response.status === 401) {
    logout("The token was refused: " + (await message(response)));
    throw new Error("unauthorized");
  }
  return response;
}

async function message(response) {
  try {
    return (await response.json()).error || response.statusText;
  } catch (_) {
    return response.status + " " + response.statusText;
  }
}

function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = text === undefined || text === null ? "" : String(text);
  if (cls) td.className = cls;
  return td;
}

function button(td, label, onclick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.addEventListener("click", onclick);
  td.appendChild(b);
  return b;
}

async function loadOrgs() {
  $("orgs-status").textContent = "Counting rows…";
  const response = await api("GET", "/api/orgs");
  if (!response.ok) {
    $("orgs-status").textContent = await message(response);
    return;
  }
  const { orgs } = await response.json();
  const body = $("orgs").tBodies[0];
  body.replaceChildren();
  for (const org of orgs) {
    const row = body.insertRow();
    row.dataset.org = org.key;
    cell(row, org.key);
    cell(row, org.rows.toLocaleString("en"), "num");
    button(cell(row, ""), "Export", () => exportOrg(org.key));
  }
  $("orgs-status").textContent = orgs.length + " organisation(s)";
}

async function exportOrg(key) {
  $("orgs-status").textContent = "Exporting " + key + "…";
  const response = await api("GET", "/api/orgs/" + encodeURIComponent(key) + "/export");
  if (!response.ok) {
    $("orgs-status").textContent = "Export of " + key + " failed: " + (await message(response));
    return;
  }
  const blob = await response.blob();
  const name = "org-" + key.replace(/[^A-Za-z0-9_-]/g, "_") + ".orgport";
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 60000);
  $("orgs-status").textContent = "Exported " + name + " (" + blob.size.toLocaleString("en") + " bytes)";
}

async function importArchive(event) {
  event.preventDefault();
  const file = $("archive").files[0];
  if (!file) return;
  const dry = $("dry-run").checked;
  $("import-status").textContent = "Uploading " + file.name + "…";
  const response = await api("POST", "/api/orgs/import?async=true" + (dry ? "&dryRun=true" : ""), file);
  if (response.status !== 202) {
    $("import-status").textContent = "Import failed: " + (await message(response));
    return;
  }
  const { job } = await response.json();
  $("import-status").textContent = "Job " + job + (dry ? " (dry run)" : "") + " started";
  loadJobs();
}

function result(job) {
  if (job.error) return job.error;
  if (!job.report) return "";
  const orgs = (job.report.orgs || []).map((o) => o.source + " → " + o.target).join(", ");
  return (job.report.dry_run ? "dry run: would create " : "created ") + orgs;
}

async function loadJobs() {
  const response = await api("GET", "/api/jobs");
  if (!response.ok) return;
  const { jobs } = await response.json();
  const body = $("jobs").tBodies[0];
  body.replaceChildren();
  for (const job of jobs) {
    const row = body.insertRow();
    row.dataset.job = job.job;
    row.dataset.state = job.state;
    cell(row, job.job);
    cell(row, job.kind);
    cell(row, job.state, job.state);
    cell(row, job.phase);
    cell(row, job.table);
    cell(row, job.rows.toLocaleString("en"), "num");
    cell(row, job.files.toLocaleString("en"), "num");
    cell(row, job.bytes.toLocaleString("en"), "num");
    cell(row, result(job), job.error ? "error" : "");
    const actions = cell(row, "");
    if (job.state === "queued" || job.state === "running") {
      button(actions, "Cancel", async () => {
        await api("DELETE", "/api/jobs/" + encodeURIComponent(job.job));
        loadJobs();
      });
    }
  }
}

function show(loggedIn) {
  $("login").hidden = loggedIn;
  $("app").hidden = !loggedIn;
  $("logout").hidden = !loggedIn;
  clearInterval(polling);
  polling = null;
  if (loggedIn) {
    loadOrgs().catch(() => {});
    loadJobs().catch(() => {});
    polling = setInterval(() => loadJobs().catch(() => {}), 1000);
  }
}

function logout(why) {
  sessionStorage.removeItem(KEY);
  $("login-error").textContent = why || "";
  show(false);
}

async function login(event) {
  event.preventDefault();
  sessionStorage.setItem(KEY, $("token").value.trim());
  $("token").value = "";
  const response = await fetch("/api/jobs", { headers: { Authorization: "Bearer " + token() } });
  if (!response.ok) {
    logout("The token was refused: " + (await message(response)));
    return;
  }
  $("login-error").textContent = "";
  show(true);
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", () => logout(""));
  $("refresh").addEventListener("click", () => loadOrgs().catch(() => {}));
  $("import-form").addEventListener("submit", (e) => importArchive(e).catch(() => {}));
  show(Boolean(token()));
});
