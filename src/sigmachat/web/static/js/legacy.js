// The legacy streaming chat API (the Responses path): REST for conversations and history,
// POST /api/v1/chat/send answering server-sent events, resume and cancel by run id.
// Translates the wire format into the common event model of events.js.

import { ApiError, errorFrom, rawFetch, request } from "./api.js";
import { readEvents } from "./sse.js";
import { errorTypeFor, statusForFailure, toolTitle } from "./events.js";

const BASE = "/api/v1/chat";

export function conversationFromApi(c) {
  return {
    id: c.id,
    title: c.title || null,
    portfolioId: c.portfolio_id || null,
    createdAt: c.created_at,
    updatedAt: c.updated_at || c.created_at,
    activeRunId: c.active_run_id || null,
    mode: c.mode || "green",
  };
}

export function messageFromApi(m) {
  const status = m.status || "complete";
  const err = m.error && typeof m.error === "object" ? m.error : m.error ? { message: String(m.error) } : null;
  return {
    id: m.id,
    role: m.role,
    content: m.content || "",
    status,
    tools: (m.tool_calls || []).map((t) => ({
      callId: t.call_id,
      name: t.name,
      title: toolTitle(t.name),
      args: t.arguments || {},
      state: t.ok === false ? "error" : "ok",
      durationMs: t.duration_ms ?? null,
      summary: t.summary || "",
      truncated: !!t.truncated,
    })),
    offline: !!m.offline,
    model: m.model || null,
    runId: m.run_id || null,
    error: err && !["complete", "cancelled", "streaming"].includes(status)
      ? { message: err.message, code: err.code || null, errorType: errorTypeFor(err.code), retryable: !!err.retryable, retryAfterMs: null }
      : null,
    createdAt: m.created_at,
    feedback: m.feedback_detail ? m.feedback_detail.rating : m.feedback === "positive" ? "up" : m.feedback === "negative" ? "down" : null,
  };
}

/** One SSE frame of the legacy protocol → a common event (or null for frames we ignore). */
export function translate(frame) {
  let env;
  try { env = JSON.parse(frame.data); } catch { return null; }
  const type = env.type || frame.event;
  const d = env.data || {};
  const base = { runId: env.run_id, seq: typeof env.seq === "number" ? env.seq : null };
  switch (type) {
    case "message_created":
      // The one frame whose fields sit at the top level (the original frontend reads them there).
      return {
        kind: "created", runId: env.run_id, seq: 0, conversationId: env.conversation_id,
        userMessageId: env.user_message_id, assistantMessageId: env.assistant_message_id,
      };
    case "start":
      return { ...base, kind: "start", model: d.model || null, offline: !!d.offline, engine: d.engine || null };
    case "token":
      return { ...base, kind: "text", delta: d.delta || "" };
    case "tool_call":
      return { ...base, kind: "tool_start", callId: d.tool_call_id, name: d.tool_name, title: toolTitle(d.tool_name), args: d.tool_args || {} };
    case "tool_result":
      return {
        ...base, kind: "tool_end", callId: d.tool_call_id, name: d.tool_name, title: toolTitle(d.tool_name),
        ok: d.ok !== false, summary: d.summary || "", durationMs: d.duration_ms ?? null, truncated: !!d.truncated,
      };
    case "info":
      return { ...base, kind: "info", text: infoText(d) };
    case "done":
      return {
        ...base, kind: "done", finalText: d.final_text ?? null, model: d.model_used || null, usage: d.usage || null,
        latencyMs: d.latency_ms ?? null, firstTokenMs: d.first_token_ms ?? null,
      };
    case "error":
      return {
        ...base, kind: "error", message: d.error || null, errorType: d.error_type || errorTypeFor(d.code),
        code: d.code || null, retryable: !!d.retryable, retryAfterMs: d.retry_after_ms ?? null,
        partialText: d.partial_text || "",
      };
    case "heartbeat":
      return { ...base, kind: "heartbeat" };
    default:
      return null;
  }
}

function infoText(d) {
  if (d.info_type === "retry_scheduled") {
    const secs = d.delay_ms ? ` in ${Math.max(1, Math.round(d.delay_ms / 1000))} s` : "";
    return `The AI service hiccupped; retrying${secs}…`;
  }
  if (d.info_type === "model_switch") return `Switched to ${d.to_model || d.model || "the fallback model"}.`;
  return d.message || null;
}

/**
 * Read an SSE response to its end, handing each common event to onEvent.
 * Resolves {terminal, lastSeq, runId}: terminal is false when the stream ended (or dropped)
 * before a done/error event; the caller then resumes.
 */
async function pump(resp, onEvent, state) {
  try {
    for await (const frame of readEvents(resp)) {
      const ev = translate(frame);
      if (!ev) continue;
      if (ev.runId) state.runId = ev.runId;
      if (typeof ev.seq === "number" && ev.kind !== "heartbeat") {
        if (ev.seq <= state.lastSeq && ev.kind !== "created") continue; // replayed twice: skip
        state.lastSeq = Math.max(state.lastSeq, ev.seq);
      }
      onEvent(ev);
      if (ev.kind === "done" || ev.kind === "error") {
        state.terminal = true;
        return state;
      }
    }
  } catch (e) {
    if (e && e.name === "AbortError") throw e;
    state.dropped = e;
  }
  return state;
}

export function createLegacyBackend() {
  return {
    kind: "responses",

    async listConversations({ limit = 20, before = null } = {}) {
      const q = new URLSearchParams({ limit: String(limit) });
      if (before) q.set("before", before);
      // The original API's bare list; our keyset cursor for the next page comes in a header.
      const resp = await rawFetch(`${BASE}/conversations?${q}`, { headers: { Accept: "application/json" } });
      if (!resp.ok) throw await errorFrom(resp);
      const items = await resp.json();
      return { items: items.map(conversationFromApi), nextCursor: resp.headers.get("X-Next-Cursor") || null };
    },

    async createConversation({ portfolioId, mode = "green" }) {
      return conversationFromApi(await request("POST", `${BASE}/conversations`, { json: { portfolio_id: portfolioId || null, mode } }));
    },

    async loadMessages(conversationId) {
      const body = await request("GET", `${BASE}/conversations/${encodeURIComponent(conversationId)}/messages`);
      return body.messages.filter((m) => m.role === "user" || m.role === "assistant").map(messageFromApi);
    },

    async conversation(conversationId) {
      return conversationFromApi(await request("GET", `${BASE}/conversations/${encodeURIComponent(conversationId)}`));
    },

    async activeRun(conversationId) {
      const conv = await request("GET", `${BASE}/conversations/${encodeURIComponent(conversationId)}`);
      return conv.active_run_id || null;
    },

    async rename(conversationId, title) {
      return conversationFromApi(await request("PATCH", `${BASE}/conversations/${encodeURIComponent(conversationId)}`, { json: { title } }));
    },

    async remove(conversationId) {
      await request("DELETE", `${BASE}/conversations/${encodeURIComponent(conversationId)}`);
    },

    /**
     * Start a run. With no conversationId, a conversation is created first (and reported as a
     * "conversation" event). HTTP failures throw ApiError; a failure to connect throws
     * NetworkError; a stream that drops resolves with terminal=false.
     */
    async send({ conversationId, text, portfolioId, mode, clientMessageId, onEvent, signal, headers = {} }) {
      if (!conversationId) {
        const conv = await this.createConversation({ portfolioId, mode });
        onEvent({ kind: "conversation", conversation: conv });
        conversationId = conv.id;
      }
      const body = { conversation_id: conversationId, text, client_message_id: clientMessageId };
      if (portfolioId) body.ui_context = { portfolio_id: portfolioId, page_hint: "chat", route: "/" };
      const resp = await rawFetch(`${BASE}/send`, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "text/event-stream", ...headers },
        body: JSON.stringify(body),
        signal,
      });
      if (!resp.ok) throw await errorFrom(resp);
      return pump(resp, onEvent, { runId: resp.headers.get("X-Run-Id"), lastSeq: -1, terminal: false, conversationId });
    },

    /**
     * Follow a run from after `afterSeq` (replaying what was missed). Resolves like send();
     * a run whose log expired resolves {expired: true, message} with the saved message.
     */
    async resume({ runId, afterSeq = 0, onEvent, signal }) {
      const headers = { Accept: "text/event-stream" };
      if (afterSeq > 0) headers["Last-Event-ID"] = `${runId}:${afterSeq}`;
      const resp = await rawFetch(`${BASE}/runs/${encodeURIComponent(runId)}/stream?after=${afterSeq}`, { headers, signal });
      if (resp.status === 410) {
        let body = null;
        try { body = await resp.json(); } catch { /* ignore */ }
        return { expired: true, message: body && body.message ? messageFromApi(body.message) : null, terminal: true };
      }
      if (!resp.ok) throw await errorFrom(resp);
      return pump(resp, onEvent, { runId, lastSeq: afterSeq, terminal: false });
    },

    async cancel(runId) {
      return request("POST", `${BASE}/runs/${encodeURIComponent(runId)}/cancel`);
    },
  };
}

export { ApiError, statusForFailure };
