// State → DOM. Builds nodes only (no HTML strings); model text goes through markdown.js.

import { clear, formatDuration, formatWhen, h, icon, spinner } from "./dom.js";
import { errorText } from "./events.js";
import { renderMarkdown } from "./markdown.js";

export const STARTERS = [
  { icon: "chart", label: "Largest position", text: "What is my largest position?" },
  { icon: "pie", label: "Sector exposure", text: "What is my sector exposure?" },
  { icon: "shield", label: "Risk", text: "How risky is my portfolio? Show volatility and beta." },
  { icon: "bolt", label: "Stress test", text: "How would my portfolio do in a market stress test?" },
];

const STATUS_BADGES = {
  cancelled: { text: "Stopped", cls: "badge-stopped" },
  failed: { text: "Failed", cls: "badge-failed" },
  incomplete: { text: "Incomplete", cls: "badge-failed" },
  interrupted: { text: "Interrupted", cls: "badge-failed" },
};

export function conversationTitle(conv) {
  return (conv && conv.title) || "New conversation";
}

// ---- conversation list ---------------------------------------------------------------------

export function renderConversationList(listEl, { conversations, currentKey, busyKeys }, actions) {
  clear(listEl);
  for (const conv of conversations) {
    const current = conv.id === currentKey;
    const title = conversationTitle(conv);
    const item = h("li", { class: `conv${current ? " conv-current" : ""}`, dataset: { id: conv.id } },
      h("button", {
        type: "button", class: "conv-open", "aria-current": current ? "page" : null,
        onclick: () => actions.open(conv.id),
      },
        h("span", { class: "conv-title" }, title),
        h("span", { class: "conv-when" },
          busyKeys.has(conv.id) ? h("span", { class: "live-dot", title: "Answer in progress" }) : null,
          formatWhen(conv.updatedAt || conv.createdAt)),
      ),
      h("span", { class: "conv-actions" },
        h("button", { type: "button", class: "icon-btn small", "aria-label": `Rename “${title}”`, onclick: () => actions.rename(conv) }, icon("pencil")),
        h("button", { type: "button", class: "icon-btn small danger", "aria-label": `Delete “${title}”`, onclick: () => actions.remove(conv) }, icon("trash")),
      ),
    );
    listEl.append(item);
  }
}

// ---- messages ------------------------------------------------------------------------------

export function renderEmptyState(portfolioName, onPick) {
  return h("section", { class: "empty", "aria-labelledby": "empty-title" },
    h("div", { class: "empty-mark", "aria-hidden": "true" }, icon("spark", "icon icon-lg")),
    h("h3", { id: "empty-title" }, "What would you like to know?"),
    h("p", { class: "empty-sub" },
      portfolioName ? ["Ask about ", h("strong", null, portfolioName), ": holdings, exposures, risk, factors and stress tests."]
        : "Ask about your holdings, exposures, risk, factors and stress tests."),
    h("ul", { class: "starters", "aria-label": "Suggested questions" },
      STARTERS.map((s) => h("li", null,
        h("button", { type: "button", class: "starter", onclick: () => onPick(s.text) },
          h("span", { class: "starter-icon" }, icon(s.icon)),
          h("span", { class: "starter-text" },
            h("span", { class: "starter-label" }, s.label),
            h("span", { class: "starter-q" }, s.text)),
        ))),
    ),
  );
}

function toolStep(tool) {
  const stateLabel = tool.state === "running" ? "running" : tool.state === "error" ? "failed" : "done";
  return h("li", { class: `tool tool-${tool.state}` },
    h("span", { class: "tool-status", role: "img", "aria-label": stateLabel },
      tool.state === "running" ? spinner() : icon(tool.state === "error" ? "x" : "check")),
    h("span", { class: "tool-main" },
      h("span", { class: "tool-title" }, tool.title || tool.name),
      tool.summary ? h("span", { class: "tool-summary" }, tool.summary) : null,
    ),
    h("span", { class: "tool-meta" },
      tool.name ? h("code", { class: "tool-name" }, tool.name) : null,
      tool.durationMs != null && tool.state !== "running" ? h("span", { class: "tool-duration" }, formatDuration(tool.durationMs)) : null,
    ),
  );
}

function toolsBlock(msg) {
  const running = msg.tools.filter((t) => t.state === "running").length;
  const total = msg.tools.reduce((sum, t) => sum + (t.durationMs || 0), 0);
  const n = msg.tools.length;
  const label = running
    ? `Running ${n === 1 ? "an analysis step" : `${n} analysis steps`}…`
    : `Ran ${n} analysis step${n === 1 ? "" : "s"}${total ? ` · ${formatDuration(total)}` : ""}`;
  const open = msg.toolsOpen ?? (msg.status === "streaming" && !msg.content);
  const details = h("details", { class: "tools", open: open || null },
    h("summary", null,
      h("span", { class: "tools-icon" }, running ? spinner() : icon("wrench")),
      h("span", { class: "tools-label" }, label),
      icon("chevron", "icon chevron")),
    h("ol", { class: "tool-list", "aria-label": "Analysis steps" }, msg.tools.map(toolStep)),
  );
  // Remember only what the person chose (a click or Enter/Space on the summary); the toggle
  // event would also fire for our own `open` attribute and pin the automatic state.
  details.querySelector("summary").addEventListener("click", () => { msg.toolsOpen = !details.open; });
  return details;
}

function errorBlock(msg, actions) {
  const err = msg.error;
  const now = Date.now();
  const waiting = err.retryAt && err.retryAt > now;
  const secs = waiting ? Math.ceil((err.retryAt - now) / 1000) : 0;
  const title = {
    RATE_LIMITED: "Rate limited",
    NETWORK_ERROR: "Connection problem",
    SERVER_ERROR: "Service problem",
    AUTH_EXPIRED: "Session expired",
    FATAL_ERROR: "Couldn’t finish the answer",
  }[err.errorType] || "Something went wrong";
  // A cut answer is kept above this note; the server's message says why it was cut.
  const heading = err.code === "response_incomplete" ? "Answer cut short" : title;
  // A rate limit's own message names a wait that goes stale; show a live countdown instead.
  const text = err.errorType === "RATE_LIMITED" && err.retryAt
    ? (waiting ? `Too many requests right now. You can retry in ${secs} s.` : "You can retry now.")
    : errorText(err);
  return h("div", { class: `msg-error error-${(err.errorType || "").toLowerCase()}`, role: "alert" },
    icon("alert", "icon error-icon"),
    h("div", { class: "error-text" },
      h("strong", null, heading),
      h("span", { class: err.retryAt ? "countdown" : null }, text),
    ),
    err.retryable
      ? h("button", {
        type: "button", class: "btn btn-small retry-btn", disabled: waiting || null, dataset: { focus: "retry" },
        onclick: () => actions.retry(msg),
      }, icon("retry"), waiting ? `Retry in ${secs} s` : "Retry")
      : null,
  );
}

export function renderMessage(msg, actions) {
  if (msg.role === "user") {
    return h("article", { class: "msg msg-user", dataset: { key: msg.key }, "aria-label": "You said" },
      h("div", { class: "bubble" }, msg.content));
  }
  const streaming = msg.status === "streaming";
  // A rejected request (rate limit) produced no answer to label as failed: its error says it all.
  const badge = msg.error && msg.error.errorType === "RATE_LIMITED" ? null : STATUS_BADGES[msg.status];
  const body = h("div", { class: "md" });
  if (msg.content) body.append(renderMarkdown(streaming ? closeDangling(msg.content) : msg.content));
  if (streaming) {
    const caret = h("span", { class: "caret", "aria-hidden": "true" });
    const last = body.lastElementChild;
    if (last && /^(P|LI|H\d)$/.test(last.nodeName)) last.append(caret);
    else if (last && (last.nodeName === "UL" || last.nodeName === "OL") && last.lastElementChild) last.lastElementChild.append(caret);
    else body.append(caret);
  }
  const waitingForText = streaming && !msg.content && !msg.tools.some((t) => t.state === "running");
  return h("article", {
    class: `msg msg-assistant status-${msg.status}`,
    dataset: { key: msg.key, status: msg.status, id: msg.id || "", chars: String(msg.content.length) },
    "aria-label": "Analyst answered",
    "aria-busy": streaming ? "true" : null,
  },
    h("div", { class: "avatar", "aria-hidden": "true" }, "σ"),
    h("div", { class: "msg-main" },
      h("div", { class: "msg-meta" },
        h("span", { class: "msg-author" }, "Analyst"),
        msg.offline ? h("span", { class: "badge badge-offline", title: `Answered by the built-in offline model${msg.model ? ` (${msg.model})` : ""}, not a live AI service` }, icon("offline"), "Offline model") : null,
        badge ? h("span", { class: `badge ${badge.cls}` }, badge.text) : null,
      ),
      msg.tools.length ? toolsBlock(msg) : null,
      msg.notice ? h("p", { class: "msg-notice", role: "status" }, spinner(), msg.notice) : null,
      waitingForText ? h("p", { class: "thinking" }, h("span", { class: "dots", "aria-hidden": "true" }, h("i"), h("i"), h("i")), h("span", { class: "visually-hidden" }, "Thinking")) : null,
      msg.content || streaming ? body : null,
      msg.status === "cancelled" && !msg.content ? h("p", { class: "muted" }, "Stopped before any answer was written.") : null,
      msg.error ? errorBlock(msg, actions) : null,
      msg.id && !streaming && msg.content && actions.rate ? feedbackBlock(msg, actions) : null,
    ),
  );
}

/** Thumbs up/down on a saved answer (the same record ChatKit's feedback writes). */
function feedbackBlock(msg, actions) {
  const button = (rating, label, name) => h("button", {
    type: "button",
    class: `icon-btn small fb-btn fb-${rating}${msg.feedback === rating ? " active" : ""}`,
    "aria-pressed": msg.feedback === rating ? "true" : "false",
    "aria-label": label,
    title: label,
    dataset: { focus: `fb-${rating}` },
    onclick: () => actions.rate(msg, rating),
  }, icon(name));
  return h("div", { class: "msg-feedback", role: "group", "aria-label": "Rate this answer" },
    button("up", "Good answer", "thumbUp"), button("down", "Poor answer", "thumbDown"));
}

/**
 * While an answer streams, close a bold or code span that has opened but not yet closed, so
 * "**Portfo" shows as bold text growing rather than literal asterisks that later snap.
 */
export function closeDangling(text) {
  const fences = (text.match(/^ {0,3}(```|~~~)/gm) || []).length;
  if (fences % 2 === 1) return text; // inside a code block: nothing inline to close
  const lastLine = text.slice(text.lastIndexOf("\n") + 1);
  let out = text;
  const ticks = (lastLine.match(/`/g) || []).length;
  if (ticks % 2 === 1) return `${out}\``;
  const bold = (lastLine.replace(/`[^`]*`/g, "").match(/\*\*/g) || []).length;
  if (bold % 2 === 1 && !/\*\*\s*$/.test(lastLine)) out += "**";
  return out;
}

/** Replace the element of one message, keeping focus on an equivalent control. */
export function patchMessage(container, msg, actions) {
  const old = container.querySelector(`[data-key="${CSS.escape(msg.key)}"]`);
  const fresh = renderMessage(msg, actions);
  if (!old) return fresh;
  const focused = old.contains(document.activeElement) ? document.activeElement.dataset.focus : null;
  fresh.classList.add("patched"); // already on screen: no entrance animation again
  old.replaceWith(fresh);
  if (focused) {
    const target = fresh.querySelector(`[data-focus="${focused}"]`);
    if (target && !target.disabled) target.focus();
  }
  return fresh;
}

export function renderThread(container, thread, { portfolioName, onPick }, actions) {
  clear(container);
  if (!thread || (thread.loading && !thread.messages.length)) {
    container.append(h("div", { class: "loading" }, spinner(), h("span", null, "Loading conversation…")));
    return;
  }
  if (thread.loadError) {
    container.append(h("div", { class: "msg-error", role: "alert" }, icon("alert", "icon error-icon"), h("span", null, thread.loadError)));
    return;
  }
  if (!thread.messages.length) {
    container.append(renderEmptyState(portfolioName, onPick));
    return;
  }
  for (const msg of thread.messages) container.append(renderMessage(msg, actions));
}
