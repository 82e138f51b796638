// Our own client of the ChatKit protocol (POST /chatkit), for users assigned the ChatKit path.
// OpenAI's ChatKit web component cannot run here (it loads from a CDN and checks a domain
// key online), so this module speaks the same JSON requests and stream events and translates
// them into the common event model of events.js.
//
// What ChatKit's item types have no field for arrives as data in `client_effect` events of
// the stream: `sigmachat.run_started` (offline flag, model), `sigmachat.tool_finished` (the
// tool, its title, whether it worked) and `sigmachat.run_failed` (code, status, error type).
// Nothing is guessed from the words on screen, and a live answer needs no other request.
// A loaded thread needs none either: each answer item carries, as entity sources, its run's
// status, failure, offline flag and rating, and its tool calls (see sourcesOf). Resume and
// cancel use the run API, which serves runs of both protocols (the
// stream carries `id: <run_id>:<seq>` and an X-Run-Id header). Streams are opened with
// `X-Disconnect: continue`: closing one (a reload) does not stop the answer.

import { errorFrom, rawFetch } from "./api.js";
import { errorTypeFor, statusForFailure, toolTitle } from "./events.js";
import { createLegacyBackend } from "./legacy.js";
import { readEvents } from "./sse.js";

const ENDPOINT = "/chatkit";

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

function taskToTool(task, callId) {
  // A workflow task without its answer's sources (an item another ChatKit server wrote): what
  // the task itself says, its title and whether it is still loading.
  const done = task.status_indicator === "complete";
  return {
    callId, name: null, title: task.title || toolTitle(null), args: {},
    state: done ? "ok" : "running", durationMs: null, summary: done ? task.content || "" : "", truncated: false,
  };
}

// What an answer carries beyond its text rides on its message as entity sources (annotations
// whose data says `sigmachat: "run" | "tool"`, all values strings): how its run went, its
// rating, and each tool call. The server writes the same sources on the streamed item and on
// the stored one, so a loaded thread shows what the live answer showed.
function sourcesOf(item, kind) {
  return (item.content || [])
    .flatMap((part) => part.annotations || [])
    .map((a) => a.source)
    .filter((s) => s && s.type === "entity" && s.data && s.data.sigmachat === kind);
}

function toolFromSource(s) {
  const ms = Number(s.data.duration_ms);
  return {
    callId: s.id, name: s.data.name || null, title: s.title || toolTitle(s.data.name), args: {},
    state: s.data.status === "error" ? "error" : "ok",
    durationMs: s.data.duration_ms && Number.isFinite(ms) ? ms : null, summary: s.description || "", truncated: false,
  };
}

const RATINGS = { positive: "up", negative: "down" };
const NO_ERROR = new Set(["complete", "cancelled", "streaming"]);

function answerFromItem(item, workflowTools) {
  const [run] = sourcesOf(item, "run");
  const tools = sourcesOf(item, "tool").map(toolFromSource);
  const d = (run && run.data) || {};
  const status = d.status || "complete";
  return {
    id: item.id, role: "assistant", content: itemText(item), status,
    tools: run ? tools : workflowTools,
    offline: d.offline === "true", model: d.model || null, runId: d.run_id || null,
    error: d.code && !NO_ERROR.has(status)
      ? {
        message: (run && run.description) || null, code: d.code, errorType: d.error_type || errorTypeFor(d.code),
        retryable: d.retryable === "true", retryAfterMs: null,
      }
      : null,
    createdAt: item.created_at,
    feedback: RATINGS[d.feedback] || null,
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
      out.push(answerFromItem(item, pendingTools));
      pendingTools = [];
    }
  }
  return out;
}

/** Translates one run's ChatKit stream events into common events. */
export function createTranslator({ runId = null, threadId = null } = {}) {
  const st = { runId, threadId, text: "", assistantSeen: false, tools: new Map(), summaries: new Map(), createdSent: false, failure: null };

  function toolStart(callId, task) {
    if (st.tools.has(callId)) return [];
    st.tools.set(callId, { started: performance.now(), ended: false, title: task.title || toolTitle(null) });
    return [{ kind: "tool_start", callId, name: null, title: task.title || toolTitle(null), args: {} }];
  }

  function toolFinished(d) {
    // The task's outcome, as data (the task update before it only changed what it shows).
    const callId = `${d.item_id}#${d.task_index}`;
    const t = st.tools.get(callId);
    if (t && t.ended) return [];
    if (t) t.ended = true;
    const summary = st.summaries.get(callId) || "";
    return [{
      kind: "tool_end", callId, name: d.name || null, title: d.title || (t && t.title) || toolTitle(d.name),
      ok: d.ok !== false, summary, durationMs: typeof d.duration_ms === "number" ? d.duration_ms : null, truncated: false,
    }];
  }

  function taskShown(callId, task) {
    if (task.status_indicator === "complete" && task.content) st.summaries.set(callId, task.content);
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
      }
      return out.concat(assistantText(itemText(it)));
    }
    if (it.type === "workflow") {
      // A task still without an outcome when its workflow closes was stopped: it stays
      // "running" until the run's end settles it (error → failed, done → ok).
      const out = [];
      (it.workflow.tasks || []).forEach((task, i) => {
        const callId = `${it.id}#${i}`;
        taskShown(callId, task);
        out.push(...toolStart(callId, task));
      });
      return out;
    }
    return [];
  }

  function effect(ev) {
    const d = ev.data || {};
    if (ev.name === "sigmachat.run_started") {
      const out = [];
      if (d.assistant_message_id && !st.assistantSeen) {
        // The answer's id before any text: a failed answer can still be retried in place.
        st.assistantSeen = true;
        out.push({ kind: "assistant", id: d.assistant_message_id });
      }
      return out.concat([{ kind: "start", offline: !!d.offline, model: d.model || null, engine: d.engine || null }]);
    }
    if (ev.name === "sigmachat.tool_finished") return toolFinished(d);
    if (ev.name === "sigmachat.run_failed") st.failure = d; // read by the error event that follows
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
          if (u.type === "workflow.task.updated") {
            taskShown(`${ev.item_id}#${u.task_index}`, u.task);
            return [];
          }
          return [];
        }
        case "client_effect":
          return effect(ev);
        case "progress_update":
          return [{ kind: "info", text: ev.text }];
        case "notice":
          return [{ kind: "info", text: ev.message }];
        case "error": {
          const f = st.failure || {};
          return [{
            kind: "error", message: ev.message || f.message || null, code: f.code || null,
            status: f.status || (f.code ? statusForFailure(f.code) : "failed"),
            errorType: f.error_type || (f.code ? errorTypeFor(f.code) : ev.allow_retry ? "SERVER_ERROR" : "FATAL_ERROR"),
            retryable: !!ev.allow_retry, retryAfterMs: null, partialText: st.text,
          }];
        }
        default:
          return [];
      }
    },
  };
}

export function createChatKitBackend() {
  const legacy = createLegacyBackend();

  async function stream(body, { onEvent, signal, headers, threadId }) {
    // We stop runs through the run API (cancel below), so a closed stream (a reload, a lost
    // connection) is not a stop: the answer goes on and is resumed by run id.
    const resp = await post(body, { signal, headers: { ...headers, "X-Disconnect": "continue" } });
    const runId = resp.headers.get("X-Run-Id") || null;
    const tr = createTranslator({ runId, threadId });
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

    /** The thread from its ChatKit items alone (no other request: they carry every detail). */
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
      return itemsToMessages(items);
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

    async send({ conversationId, text, portfolioId, mode, onEvent, signal, headers }) {
      // A new thread takes its analyst mode in the request metadata (ChatKit has no field for it).
      const body = conversationId
        ? { type: "threads.add_user_message", params: { thread_id: conversationId, input: input(text) } }
        : { type: "threads.create", params: { input: input(text) }, metadata: mode ? { mode } : {} };
      return stream(body, { onEvent, signal, headers: headersFor(portfolioId, headers), threadId: conversationId });
    },

    /** Answer the same question again (the failed answer's items are removed by the server). */
    async retryAfter({ conversationId, userItemId, portfolioId, onEvent, signal, headers }) {
      const body = { type: "threads.retry_after_item", params: { thread_id: conversationId, item_id: userItemId } };
      return stream(body, { onEvent, signal, headers: headersFor(portfolioId, headers), threadId: conversationId });
    },

    resume: (args) => legacy.resume(args),
    cancel: (runId) => legacy.cancel(runId),
  };
}
