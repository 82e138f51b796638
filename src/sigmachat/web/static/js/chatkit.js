// Our own client of the ChatKit protocol (POST /chatkit), for users assigned the ChatKit path.
// OpenAI's ChatKit web component cannot run here (it loads from a CDN and checks a domain
// key online), so this module speaks the same JSON requests and stream events and translates
// them into the common event model of events.js.
//
// What ChatKit's wire format has no field for (the offline-model flag, tool names and exact
// step durations, the failure code) is read after the run from the shared history
// (GET /api/v1/chat/conversations/{id}/messages): ChatKit threads and conversations are the
// same records, with the same ids. Resume and cancel use the run API, which serves runs of
// both protocols (the stream carries `id: <run_id>:<seq>` and an X-Run-Id header). Streams are
// opened with `X-Disconnect: continue`: closing one (a reload) does not stop the answer.

import { errorFrom, rawFetch, request } from "./api.js";
import { errorTypeFor, toolTitle } from "./events.js";
import { createLegacyBackend, messageFromApi } from "./legacy.js";
import { readEvents } from "./sse.js";

const ENDPOINT = "/chatkit";
const FAILED_SUMMARIES = new Set(["Could not be computed", "Stopped"]);

async function post(body, { signal, headers = {} } = {}) {
  const resp = await rawFetch(ENDPOINT, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "text/event-stream, application/json", ...headers },
    body: JSON.stringify(body),
    signal,
  });
  if (!resp.ok) throw await errorFrom(resp);
  return resp;
}

async function postJson(body) {
  const resp = await post(body);
  const text = await resp.text();
  return text ? JSON.parse(text) : null;
}

function input(text) {
  return { content: [{ type: "input_text", text }], attachments: [], inference_options: {} };
}

export function threadToConversation(t) {
  return {
    id: t.id,
    title: t.title || null,
    portfolioId: (t.metadata && t.metadata.portfolio_id) || null,
    createdAt: t.created_at,
    updatedAt: t.updated_at || t.created_at,
    activeRunId: null,
  };
}

function itemText(item) {
  return (item.content || []).map((part) => part.text || "").join("");
}

function taskToTool(task, callId, startedAt = null) {
  const done = task.status_indicator === "complete";
  return {
    callId, name: null, title: task.title || toolTitle(null), args: {},
    state: done ? (FAILED_SUMMARIES.has(task.content) ? "error" : "ok") : "running",
    durationMs: null, summary: done ? task.content || "" : "", truncated: false, startedAt,
  };
}

/** ChatKit thread items (oldest first) → messages of the common model. */
export function itemsToMessages(items) {
  const out = [];
  let pendingTools = [];
  for (const item of items) {
    if (item.type === "user_message") {
      pendingTools = [];
      out.push({ id: item.id, role: "user", content: itemText(item), status: "complete", tools: [], offline: false, model: null, runId: null, error: null, createdAt: item.created_at });
    } else if (item.type === "workflow") {
      (item.workflow.tasks || []).forEach((task, i) => pendingTools.push(taskToTool(task, `${item.id}#${i}`)));
    } else if (item.type === "assistant_message") {
      out.push({ id: item.id, role: "assistant", content: itemText(item), status: "complete", tools: pendingTools, offline: false, model: null, runId: null, error: null, createdAt: item.created_at });
      pendingTools = [];
    }
  }
  if (pendingTools.length) {
    // Tool steps of a run that wrote no text (it failed or was stopped).
    out.push({ id: null, role: "assistant", content: "", status: "failed", tools: pendingTools, offline: false, model: null, runId: null, error: null, createdAt: null });
  }
  return out;
}

/** Fill in what the ChatKit items cannot say from the shared history rows. */
export function mergeHistory(messages, rows) {
  const byId = new Map(rows.map((r) => [r.id, r]));
  const merged = [];
  const seen = new Set();
  for (const m of messages) {
    const row = m.id ? byId.get(m.id) : null;
    if (row) {
      seen.add(row.id);
      merged.push(enrich(m, row));
    } else if (m.id || m.content || m.tools.length) {
      merged.push(m);
    }
  }
  // Assistant rows with no ChatKit item (a failure before any text): after their question.
  rows.forEach((row, i) => {
    if (seen.has(row.id) || row.role !== "assistant") return;
    const question = rows.slice(0, i).reverse().find((r) => r.role === "user");
    const at = question ? merged.findIndex((m) => m.id === question.id) : -1;
    if (at < 0) return;
    let end = at + 1;
    if (merged[end] && merged[end].role === "assistant" && !merged[end].id) merged.splice(end, 1); // its bare tool steps
    while (merged[end] && merged[end].role === "assistant") end++;
    merged.splice(end, 0, row);
  });
  return merged;
}

function enrich(m, row) {
  return {
    ...m,
    offline: row.offline,
    model: row.model,
    runId: row.runId,
    status: row.status, // the saved row knows whether the answer is still being written
    error: row.error,
    tools: row.tools.length ? row.tools : m.tools,
    content: row.content && row.content.length > m.content.length ? row.content : m.content,
  };
}

/** Translates one run's ChatKit stream events into common events. */
export function createTranslator({ runId = null, threadId = null, offlineHint = false } = {}) {
  const st = { runId, threadId, text: "", assistantSeen: false, tools: new Map(), createdSent: false };

  function toolStart(callId, task) {
    if (st.tools.has(callId)) return [];
    st.tools.set(callId, { started: performance.now(), ended: false });
    const out = [{ kind: "tool_start", callId, name: null, title: task.title || toolTitle(null), args: {} }];
    if (task.status_indicator === "complete") out.push(...toolEnd(callId, task));
    return out;
  }

  function toolEnd(callId, task) {
    const t = st.tools.get(callId);
    if (!t || t.ended || task.status_indicator !== "complete") return [];
    t.ended = true;
    return [{
      kind: "tool_end", callId, name: null, title: task.title || toolTitle(null),
      ok: !FAILED_SUMMARIES.has(task.content), summary: task.content || "",
      durationMs: performance.now() - t.started, truncated: false,
    }];
  }

  function assistantText(full) {
    // thread.item.added/done carry the whole text: emit only what the deltas have not.
    if (full.length > st.text.length && full.startsWith(st.text)) {
      const delta = full.slice(st.text.length);
      st.text = full;
      return [{ kind: "text", delta }];
    }
    return [];
  }

  function item(ev) {
    const it = ev.item;
    if (it.type === "user_message") {
      if (st.createdSent) return [];
      st.createdSent = true;
      return [{ kind: "created", runId: st.runId, conversationId: it.thread_id, userMessageId: it.id, assistantMessageId: null }];
    }
    if (it.type === "assistant_message") {
      const out = [];
      if (!st.assistantSeen) {
        st.assistantSeen = true;
        out.push({ kind: "assistant", id: it.id });
        if (offlineHint) out.push({ kind: "start", offline: true, model: null });
      }
      return out.concat(assistantText(itemText(it)));
    }
    if (it.type === "workflow") {
      const out = [];
      (it.workflow.tasks || []).forEach((task, i) => {
        const callId = `${it.id}#${i}`;
        out.push(...toolStart(callId, task), ...toolEnd(callId, task));
      });
      return out;
    }
    return [];
  }

  return {
    state: st,
    translate(ev) {
      switch (ev.type) {
        case "thread.created":
          st.threadId = ev.thread.id;
          return [{ kind: "conversation", conversation: threadToConversation(ev.thread) }];
        case "thread.updated":
          return ev.thread && ev.thread.title ? [{ kind: "title", conversationId: ev.thread.id, title: ev.thread.title }] : [];
        case "thread.item.added":
        case "thread.item.done":
        case "thread.item.replaced":
          return item(ev);
        case "thread.item.updated": {
          const u = ev.update || {};
          if (u.type === "assistant_message.content_part.text_delta") {
            st.text += u.delta;
            return [{ kind: "text", delta: u.delta }];
          }
          if (u.type === "assistant_message.content_part.added" || u.type === "assistant_message.content_part.done") {
            return assistantText(st.text.length ? st.text : (u.content && u.content.text) || "");
          }
          if (u.type === "workflow.task.added") return toolStart(`${ev.item_id}#${u.task_index}`, u.task);
          if (u.type === "workflow.task.updated") return toolEnd(`${ev.item_id}#${u.task_index}`, u.task);
          return [];
        }
        case "progress_update":
          return [{ kind: "info", text: ev.text }];
        case "notice":
          return [{ kind: "info", text: ev.message }];
        case "error":
          return [{
            kind: "error", message: ev.message || null, code: null,
            errorType: ev.allow_retry ? "SERVER_ERROR" : "FATAL_ERROR", retryable: !!ev.allow_retry,
            retryAfterMs: null, partialText: st.text,
          }];
        default:
          return [];
      }
    },
  };
}

export function createChatKitBackend({ offlineHint = false } = {}) {
  const legacy = createLegacyBackend();

  async function stream(body, { onEvent, signal, headers, threadId }) {
    // We stop runs through the run API (cancel below), so a closed stream (a reload, a lost
    // connection) is not a stop: the answer goes on and is resumed by run id.
    const resp = await post(body, { signal, headers: { ...headers, "X-Disconnect": "continue" } });
    const runId = resp.headers.get("X-Run-Id") || null;
    const tr = createTranslator({ runId, threadId, offlineHint });
    const result = { runId, lastSeq: 0, terminal: false, conversationId: threadId };
    if (!(resp.headers.get("Content-Type") || "").includes("text/event-stream")) {
      result.terminal = true;
      return result;
    }
    try {
      for await (const frame of readEvents(resp)) {
        if (frame.id) {
          const seq = Number(frame.id.split(":").pop());
          if (Number.isFinite(seq)) result.lastSeq = Math.max(result.lastSeq, seq);
        }
        let ev;
        try { ev = JSON.parse(frame.data); } catch { continue; }
        for (const common of tr.translate(ev)) {
          if (runId && !common.runId) common.runId = runId;
          if (frame.id) common.seq = result.lastSeq;
          onEvent(common);
          if (common.kind === "error") result.terminal = true;
        }
      }
      if (!result.terminal) {
        // A ChatKit stream ends cleanly when the answer is complete.
        onEvent({ kind: "done", runId, seq: result.lastSeq, finalText: tr.state.text || null });
        result.terminal = true;
      }
    } catch (e) {
      if (e && e.name === "AbortError") throw e;
      result.dropped = e; // network drop mid-stream: the caller resumes by run id
    }
    result.conversationId = tr.state.threadId;
    return result;
  }

  function headersFor(portfolioId, headers = {}) {
    return portfolioId ? { ...headers, "X-Portfolio-Id": portfolioId } : headers;
  }

  return {
    kind: "chatkit",

    async listConversations({ limit = 20, before = null } = {}) {
      const params = { limit, order: "desc" };
      if (before) params.after = before;
      const page = await postJson({ type: "threads.list", params });
      return { items: (page.data || []).map(threadToConversation), nextCursor: page.has_more ? page.after : null };
    },

    async loadMessages(threadId) {
      const items = [];
      let after = null;
      for (let pages = 0; pages < 50; pages++) {
        const params = { thread_id: threadId, order: "asc", limit: 100 };
        if (after) params.after = after;
        const page = await postJson({ type: "items.list", params });
        items.push(...(page.data || []));
        if (!page.has_more || !page.after) break;
        after = page.after;
      }
      const messages = itemsToMessages(items);
      try {
        return mergeHistory(messages, await legacy.loadMessages(threadId));
      } catch {
        return messages; // the history rows only add detail
      }
    },

    activeRun: (threadId) => legacy.activeRun(threadId),

    async conversation(threadId) {
      return threadToConversation(await postJson({ type: "threads.get_by_id", params: { thread_id: threadId } }));
    },

    async rename(threadId, title) {
      return threadToConversation(await postJson({ type: "threads.update", params: { thread_id: threadId, title } }));
    },

    async remove(threadId) {
      await postJson({ type: "threads.delete", params: { thread_id: threadId } });
    },

    async send({ conversationId, text, portfolioId, onEvent, signal, headers }) {
      const body = conversationId
        ? { type: "threads.add_user_message", params: { thread_id: conversationId, input: input(text) } }
        : { type: "threads.create", params: { input: input(text) } };
      return stream(body, { onEvent, signal, headers: headersFor(portfolioId, headers), threadId: conversationId });
    },

    /** Answer the same question again (the failed answer's items are removed by the server). */
    async retryAfter({ conversationId, userItemId, portfolioId, onEvent, signal, headers }) {
      const body = { type: "threads.retry_after_item", params: { thread_id: conversationId, item_id: userItemId } };
      return stream(body, { onEvent, signal, headers: headersFor(portfolioId, headers), threadId: conversationId });
    },

    resume: (args) => legacy.resume(args),
    cancel: (runId) => legacy.cancel(runId),

    /** After a run: read the saved row for what the ChatKit events did not carry. */
    async finalize(turn) {
      const id = turn.conversationId || turn.key;
      for (let attempt = 0; attempt < 5; attempt++) {
        const body = await request("GET", `/api/v1/chat/conversations/${encodeURIComponent(id)}/messages`);
        const row = body.messages.find((m) => m.role === "assistant" && ((turn.asst.id && m.id === turn.asst.id) || (turn.runId && m.run_id === turn.runId)));
        if (row && row.status !== "streaming") {
          const saved = messageFromApi(row);
          const m = turn.asst;
          m.id = saved.id;
          m.offline = saved.offline;
          m.model = saved.model;
          m.runId = saved.runId;
          if (saved.tools.length) m.tools = saved.tools;
          if (saved.status !== m.status && m.status !== "cancelled") m.status = saved.status;
          if (saved.error && m.error) m.error = { ...m.error, code: saved.error.code, errorType: errorTypeFor(saved.error.code) };
          return;
        }
        await new Promise((r) => setTimeout(r, 150 * (attempt + 1)));
      }
    },
  };
}
