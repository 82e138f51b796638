// The operator page: the chat_backend rollout flag (state, controls, audit log), live counters
// and the Responses-vs-ChatKit report. Every call goes to the admin JSON APIs, which enforce
// the admin role themselves; this page only shows what they answer, built as DOM nodes.

import { ApiError, onAuthLost, request } from "./api.js";
import { h, clear, formatDuration } from "./dom.js";
import { bindThemeToggle } from "./theme-toggle.js";

const ADMIN = "/api/v1/admin";
const LIVE_EVERY_MS = 4000;
const $ = (id) => document.getElementById(id);

const els = {
  root: $("admin"),
  error: $("admin-error"),
  flagName: $("flag-name"),
  flagMeta: $("flag-meta"),
  killState: $("kill-state"),
  killToggle: $("kill-toggle"),
  killDialog: $("kill-dialog"),
  killTitle: $("kill-title"),
  killDesc: $("kill-desc"),
  killConfirm: $("kill-confirm"),
  percentForm: $("percent-form"),
  percentInput: $("percent-input"),
  percentValue: $("percent-value"),
  defaultForm: $("default-form"),
  defaultSelect: $("default-select"),
  defaultValue: $("default-value"),
  lists: $("lists"),
  liveBody: $("live-body"),
  liveMeta: $("live-meta"),
  reportBody: $("report-body"),
  reportWindow: $("report-window"),
  reportLink: $("report-link"),
  auditBody: $("audit-body"),
  announcer: $("announcer"),
  theme: $("theme-toggle"),
  userName: $("user-name"),
};

const LISTS = [
  { key: "allow_users", title: "Allowlist: users", hint: "These users always get ChatKit.", placeholder: "email@example.com", type: "email" },
  { key: "allow_portfolios", title: "Allowlist: portfolios", hint: "Turns about these portfolios always get ChatKit.", placeholder: "portfolio id", type: "text" },
  { key: "deny_users", title: "Denylist: users", hint: "These users always stay on Responses.", placeholder: "email@example.com", type: "email" },
];

let flag = null; // the last state the server answered

onAuthLost(() => window.location.replace("/login?expired=1"));

// ---- errors + announcements ----------------------------------------------------------------

function showError(err) {
  const message = err instanceof ApiError || (err && err.message) ? err.message : "Something went wrong.";
  els.error.textContent = message;
  els.error.hidden = false;
}

function clearError() {
  els.error.hidden = true;
  els.error.textContent = "";
}

function announce(text) {
  els.announcer.textContent = text;
}

// ---- rollout state -------------------------------------------------------------------------

function renderFlag(state) {
  flag = state;
  els.flagName.textContent = state.flag || "chat_backend";
  const who = state.updated_by ? ` by ${state.updated_by}` : "";
  const when = state.updated_at ? ` · ${new Date(state.updated_at).toLocaleString()}` : "";
  els.flagMeta.textContent = `version ${state.version}${who}${when}${state.provider ? ` · provider ${state.provider}` : ""}`;
  els.flagMeta.dataset.version = String(state.version);

  els.killState.textContent = state.kill_switch ? "ON: everyone on Responses" : "off";
  els.killState.className = `pill ${state.kill_switch ? "pill-danger" : "pill-ok"}`;
  els.killToggle.textContent = state.kill_switch ? "Turn kill switch off" : "Turn kill switch on";
  els.killToggle.className = `btn ${state.kill_switch ? "btn-ghost" : "btn-danger"}`;

  els.percentValue.textContent = `${state.percent}%`;
  if (document.activeElement !== els.percentInput) els.percentInput.value = String(state.percent);
  els.defaultValue.textContent = state.default;
  els.defaultSelect.value = state.default;

  const editable = state.managed_here !== false;
  for (const el of document.querySelectorAll("#rollout button, #rollout input, #rollout select")) el.disabled = !editable;
  if (!editable) showError(`The flag is managed by the ${state.provider} provider; change it there.`);

  renderLists(state);
}

function renderLists(state) {
  clear(els.lists);
  for (const spec of LISTS) {
    const items = state[spec.key] || [];
    const input = h("input", { type: spec.type, placeholder: spec.placeholder, "aria-label": `Add to ${spec.title}`, required: true, maxlength: 320 });
    const form = h("form", { class: "inline" }, input, h("button", { type: "submit", class: "btn btn-primary btn-small" }, "Add"));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const value = input.value.trim();
      if (!value) return;
      if (items.includes(value)) { input.value = ""; return; }
      save({ [spec.key]: [...items, value] }, `Added ${value} to ${spec.title}.`);
    });
    const list = h("ul", { class: "chip-list", "aria-label": spec.title },
      items.length === 0 ? h("li", { class: "muted small" }, "Empty") : items.map((item) =>
        h("li", { class: "chip" },
          h("span", { class: "chip-text" }, item),
          h("button", {
            type: "button", class: "chip-remove", "aria-label": `Remove ${item} from ${spec.title}`,
            onclick: () => save({ [spec.key]: items.filter((x) => x !== item) }, `Removed ${item} from ${spec.title}.`),
          }, "×"))));
    els.lists.append(h("div", { class: "field-card", dataset: { list: spec.key } },
      h("label", null, spec.title), h("p", { class: "muted small" }, spec.hint), list, form));
  }
}

/** PUT a partial change, conditional on the version shown (409 → reload and say so). */
async function save(patch, doneText) {
  clearError();
  try {
    const state = await request("PUT", `${ADMIN}/rollout`, { json: { ...patch, expected_version: flag ? flag.version : undefined } });
    renderFlag(state);
    announce(doneText || "Saved.");
    loadAudit();
    return true;
  } catch (err) {
    showError(err);
    if (err instanceof ApiError && err.status === 409) loadFlag();
    return false;
  }
}

async function loadFlag() {
  try {
    renderFlag(await request("GET", `${ADMIN}/rollout`));
  } catch (err) {
    showError(err);
  }
}

els.percentForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const percent = Number(els.percentInput.value);
  if (!Number.isInteger(percent) || percent < 0 || percent > 100) {
    showError("The percentage must be a whole number from 0 to 100.");
    return;
  }
  save({ percent }, `ChatKit percentage set to ${percent}%.`).then(() => els.percentInput.blur());
});

els.defaultForm.addEventListener("submit", (event) => {
  event.preventDefault();
  save({ default: els.defaultSelect.value }, `Default variant set to ${els.defaultSelect.value}.`);
});

els.killToggle.addEventListener("click", () => {
  if (!flag) return;
  const turningOn = !flag.kill_switch;
  els.killTitle.textContent = turningOn ? "Turn the kill switch on?" : "Turn the kill switch off?";
  els.killDesc.textContent = turningOn
    ? "Every new turn, on every instance, goes to the Responses path within seconds. Runs in flight finish where they are."
    : `New turns follow the rollout rules again (${flag.percent}% ChatKit, default ${flag.default}).`;
  els.killConfirm.textContent = turningOn ? "Turn on" : "Turn off";
  els.killConfirm.className = `btn ${turningOn ? "btn-danger" : "btn-primary"}`;
  els.killDialog.returnValue = "";
  els.killDialog.showModal();
});

els.killDialog.addEventListener("close", () => {
  if (els.killDialog.returnValue !== "confirm" || !flag) return;
  const on = !flag.kill_switch;
  save({ kill_switch: on }, on ? "Kill switch on." : "Kill switch off.");
});

// ---- audit log -----------------------------------------------------------------------------

function fmtValue(value) {
  if (value === undefined) return "—";
  if (Array.isArray(value)) return value.length ? value.join(", ") : "[]";
  if (value === null) return "null";
  return String(value);
}

async function loadAudit() {
  try {
    const { entries } = await request("GET", `${ADMIN}/rollout/audit?limit=50`);
    if (!entries.length) {
      els.auditBody.replaceChildren(h("p", { class: "muted" }, "No changes yet (version 0: the configured defaults)."));
      return;
    }
    const rows = entries.map((e) => {
      const fields = Object.keys({ ...(e.old || {}), ...(e.new || {}) });
      return h("tr", { dataset: { version: String(e.version) } },
        h("td", { class: "num" }, String(e.version)),
        h("td", { class: "nowrap" }, e.changed_at ? new Date(e.changed_at).toLocaleString() : ""),
        h("td", null, e.actor || ""),
        h("td", null, h("ul", { class: "changes" }, fields.map((f) =>
          h("li", null, h("code", null, f), " ", h("span", { class: "old" }, fmtValue((e.old || {})[f])), " → ",
            h("span", { class: "new" }, fmtValue((e.new || {})[f])))))));
    });
    els.auditBody.replaceChildren(h("div", { class: "table-wrap" }, h("table", { class: "data-table", id: "audit-table" },
      h("thead", null, h("tr", null, h("th", { class: "num" }, "Version"), h("th", null, "When"), h("th", null, "Who"), h("th", null, "Change (old → new)"))),
      h("tbody", null, rows))));
  } catch (err) {
    els.auditBody.replaceChildren(h("p", { class: "notice notice-error", role: "alert" }, err.message || "Couldn't load the audit log."));
  }
}

// ---- live counters -------------------------------------------------------------------------

const num = (v, suffix = "") => (v === null || v === undefined ? "—" : `${v}${suffix}`);

function renderLive(live) {
  const paths = Object.keys({ ...(live.active_streams || {}), ...(live.paths || {}) });
  const rows = paths.map((p) => {
    const s = (live.paths || {})[p] || {};
    return h("tr", { dataset: { path: p } },
      h("th", { scope: "row" }, p),
      h("td", { class: "num" }, num((live.active_streams || {})[p] ?? 0)),
      h("td", { class: "num" }, num(s.runs)),
      h("td", { class: "num" }, num(s.errors)),
      h("td", { class: "num" }, num(s.error_rate_pct, "%")),
      h("td", { class: "num" }, s.ttfb_p95_ms === null || s.ttfb_p95_ms === undefined ? "—" : formatDuration(s.ttfb_p95_ms)),
      h("td", { class: "num" }, num(s.tokens_per_s_p50)));
  });
  const f = live.flag || {};
  els.liveBody.replaceChildren(
    h("div", { class: "table-wrap" }, h("table", { class: "data-table", id: "live-table" },
      h("thead", null, h("tr", null, h("th", null, "Path"), h("th", { class: "num" }, "Streaming now"), h("th", { class: "num" }, "Runs (5 min)"),
        h("th", { class: "num" }, "Errors"), h("th", { class: "num" }, "Error rate"), h("th", { class: "num" }, "p95 TTFB"), h("th", { class: "num" }, "p50 tokens/s"))),
      h("tbody", null, rows))),
    h("p", { class: "muted small" },
      `Shadow runs in flight: ${live.shadow_in_flight ?? 0} · flag v${f.version ?? "?"}: ${f.percent ?? "?"}% ChatKit, default ${f.default ?? "?"}, kill switch ${f.kill_switch ? "ON" : "off"}`),
  );
  els.liveMeta.textContent = `updated ${new Date().toLocaleTimeString()} · every ${LIVE_EVERY_MS / 1000} s`;
  // Another operator (or the CLI) changed the flag: show the new state without a reload.
  if (flag && typeof f.version === "number" && f.version !== flag.version) { loadFlag(); loadAudit(); }
}

async function pollLive() {
  try {
    if (!document.hidden) renderLive(await request("GET", `${ADMIN}/live`));
  } catch (err) {
    els.liveMeta.textContent = `update failed: ${err.message || "error"}`;
  } finally {
    setTimeout(pollLive, LIVE_EVERY_MS);
  }
}

// ---- report --------------------------------------------------------------------------------

function dist(d) {
  return d && d.n ? `${formatDuration(d.p50)} / ${formatDuration(d.p95)}` : "—";
}

function renderReport(report) {
  const paths = report.paths || {};
  const names = Object.keys(paths);
  const row = (label, fn) => h("tr", null, h("th", { scope: "row" }, label), names.map((p) => h("td", { class: "num" }, fn(paths[p]))));
  const table = h("table", { class: "data-table", id: "report-table" },
    h("thead", null, h("tr", null, h("th", null, "Metric"), names.map((p) => h("th", { class: "num" }, p)))),
    h("tbody", null,
      row("Runs", (s) => num(s.runs)),
      row("Completed", (s) => num(s.completed)),
      row("Cancelled by user", (s) => num(s.cancelled)),
      row("Errors", (s) => num(s.errors)),
      row("Error rate", (s) => num(s.error_rate_pct, "%")),
      row("TTFB p50 / p95", (s) => dist(s.ttfb_ms)),
      row("Completion p50 / p95", (s) => dist(s.duration_ms)),
      row("Tokens/s p50", (s) => num(s.tokens_per_s && s.tokens_per_s.p50)),
      row("Tool calls per turn (mean)", (s) => num(s.tool_calls_per_turn && s.tool_calls_per_turn.mean)),
      row("Feedback positive / negative", (s) => (s.feedback ? `${s.feedback.positive} / ${s.feedback.negative}` : "—")),
      row("Answers edited by the user", (s) => num(s.feedback && s.feedback.edited))));

  const v = report.verdict || { decision: "no_go", checks: [] };
  const go = v.decision === "go";
  const checks = h("ul", { class: "checks" }, (v.checks || []).map((c) =>
    h("li", { class: c.passed ? "check-pass" : "check-fail" },
      h("span", { class: "check-mark", "aria-label": c.passed ? "passed" : "failed", role: "img" }, c.passed ? "✓" : "✗"),
      h("span", null, h("strong", null, c.name), " · ", c.detail || "", c.passed || !c.reason ? null : h("span", { class: "check-reason" }, c.reason)))));

  const shadowPairs = Array.isArray(report.shadow) ? report.shadow.reduce((n, g) => n + (g.pairs || 0), 0) : null;
  const windowText = report.window ? `${new Date(report.window.since).toLocaleString()} → ${new Date(report.window.until).toLocaleString()}` : "";
  els.reportBody.replaceChildren(
    h("div", { class: `verdict ${go ? "verdict-go" : "verdict-nogo"}`, id: "verdict", role: "status" }, `Verdict: ${go ? "GO" : "NO-GO"}`),
    checks,
    h("div", { class: "table-wrap" }, table),
    h("p", { class: "muted small" },
      `${windowText}${shadowPairs === null ? "" : ` · shadow pairs: ${shadowPairs}`}`),
  );
}

async function loadReport() {
  const since = els.reportWindow.value;
  els.reportLink.href = `${ADMIN}/report.html?since=${encodeURIComponent(since)}`;
  try {
    renderReport(await request("GET", `${ADMIN}/report?since=${encodeURIComponent(since)}`));
  } catch (err) {
    els.reportBody.replaceChildren(h("p", { class: "notice notice-error", role: "alert" }, err.message || "Couldn't load the report."));
  }
}

els.reportWindow.addEventListener("change", loadReport);

// ---- theme + start -------------------------------------------------------------------------

bindThemeToggle(els.theme);

async function start() {
  request("GET", "/api/v1/auth/me").then((me) => {
    els.userName.textContent = me.full_name || me.email;
    els.userName.title = me.email;
  }).catch(() => {});
  await Promise.all([loadFlag(), loadAudit(), loadReport()]);
  els.root.dataset.ready = "true";
  pollLive();
}

start();
