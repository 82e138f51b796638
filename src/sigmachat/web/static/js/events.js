// The common event model: both protocol clients (legacy.js, chatkit.js) translate their wire
// events into these, and state.js applies only these, so the two backends render the same.
//
//   {kind: "conversation", conversation}                  a conversation/thread was created
//   {kind: "created", runId, conversationId, userMessageId, assistantMessageId}
//   {kind: "start", model, offline, engine}
//   {kind: "text", delta}
//   {kind: "tool_start", callId, name, title, args}
//   {kind: "tool_end", callId, name, title, ok, summary, durationMs, truncated}
//   {kind: "info", text}                                   retry in progress, model switch, …
//   {kind: "title", conversationId, title}                 the server titled the conversation
//   {kind: "done", finalText, model, usage, latencyMs, firstTokenMs}
//   {kind: "error", message, errorType, code, retryable, retryAfterMs, partialText}
//   {kind: "heartbeat"}
// Events of a run carry `runId` and, when the wire has one, `seq` (gap-free per run).
//
// A message (history or live):
//   {id, role: "user"|"assistant", content, status, tools: [Tool], offline, model, runId,
//    error: {message, code, errorType, retryable, retryAfterMs} | null, createdAt}
// status: complete | streaming | failed | cancelled | incomplete | interrupted
// Tool: {callId, name, title, args, state: "running"|"ok"|"error", durationMs, summary, truncated}

// What the server defines once and serves: each tool's title (GET /api/v1/tools) and, per
// failure code, the answer's status and error type (GET /api/v1/chat/failures). Loaded at
// start; until then (or if that fails) tools read "Looking up …" and failures "failed".
const catalog = { titles: new Map(), failures: new Map() };

export async function loadCatalog(request) {
  const [tools, failures] = await Promise.allSettled([
    request("GET", "/api/v1/tools"),
    request("GET", "/api/v1/chat/failures"),
  ]);
  if (tools.status === "fulfilled" && tools.value) {
    for (const t of tools.value.tools || []) if (t.title) catalog.titles.set(t.name, t.title);
  }
  if (failures.status === "fulfilled" && failures.value) {
    for (const f of failures.value.failures || []) catalog.failures.set(f.code, f);
  }
}

export function toolTitle(name) {
  if (!name) return "Running an analysis step";
  if (catalog.titles.has(name)) return catalog.titles.get(name);
  const words = name.replace(/^get_/, "").replace(/_/g, " ").trim();
  return words ? `Looking up ${words}` : "Running an analysis step";
}

// How each legacy error_type reads to a person when the server sent no message.
const ERROR_TEXT = {
  AUTH_EXPIRED: "Your session has expired. Sign in again.",
  RATE_LIMITED: "Too many requests right now.",
  NETWORK_ERROR: "The connection dropped before the answer finished.",
  SERVER_ERROR: "The AI service had a problem answering.",
  FATAL_ERROR: "The answer could not be completed.",
};

export function errorText(err) {
  return (err && err.message) || ERROR_TEXT[err && err.errorType] || "Something went wrong.";
}

// Status of an assistant message after a failure, from the failure code (the server's table).
export function statusForFailure(code) {
  const kind = catalog.failures.get(code);
  return (kind && kind.status) || "failed";
}

// Request errors that mean the session is gone (not run failures: those are in the table).
const AUTH_CODES = new Set(["auth_expired", "not_authenticated"]);

export function errorTypeFor(code) {
  if (AUTH_CODES.has(code)) return "AUTH_EXPIRED";
  const kind = catalog.failures.get(code);
  return (kind && kind.error_type) || "SERVER_ERROR";
}

export function newAssistant(fields = {}) {
  return {
    id: null, role: "assistant", content: "", status: "streaming", tools: [], offline: false,
    model: null, runId: null, error: null, notice: null, createdAt: new Date().toISOString(), ...fields,
  };
}
