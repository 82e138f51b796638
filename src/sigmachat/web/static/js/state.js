// The client's state and the one place that applies common events to messages.
// Renderers subscribe to topics; nothing else mutates the DOM.
//
// Topics: "user", "portfolios", "conversations", "thread" (the open conversation's message
// list changed shape), "message" (one message changed; payload: the message), "composer",
// "banner", "title".

import { newAssistant, statusForFailure, errorTypeFor } from "./events.js";
import { uuid } from "./dom.js";

export function createStore() {
  const listeners = new Map();
  const state = {
    user: null,
    backend: null, // "responses" | "chatkit"
    offlineHint: false, // the server says answers come from the offline model
    portfolios: [],
    portfolioId: null,
    maxMessageChars: 4000, // replaced by GET /api/v1/chat/config's max_message_chars (the server's limit)
    conversations: [],
    nextCursor: null,
    draftMode: "green", // the analyst mode picked before a conversation exists
    conversationsLoaded: false,
    currentKey: null, // a conversation id, or "draft:<uuid>" before the first message
    threads: new Map(), // key → {messages, loaded, loading, turn}
    banner: null, // {kind: "reconnecting"|"info"|"error", text}
  };

  function emit(topic, payload) {
    for (const fn of listeners.get(topic) || []) fn(payload, state);
  }

  function on(topic, fn) {
    if (!listeners.has(topic)) listeners.set(topic, new Set());
    listeners.get(topic).add(fn);
    return () => listeners.get(topic).delete(fn);
  }

  function thread(key = state.currentKey) {
    if (!key) return null;
    if (!state.threads.has(key)) state.threads.set(key, { messages: [], loaded: false, loading: false, turn: null });
    return state.threads.get(key);
  }

  function isCurrent(key) {
    return key === state.currentKey;
  }

  function currentConversation() {
    return state.conversations.find((c) => c.id === state.currentKey) || null;
  }

  /** Give a draft thread its server id once the conversation exists. */
  function rekey(oldKey, newKey) {
    const t = state.threads.get(oldKey);
    if (!t) return;
    state.threads.delete(oldKey);
    state.threads.set(newKey, t);
    if (state.currentKey === oldKey) {
      state.currentKey = newKey;
      emit("title");
    }
  }

  function upsertConversation(conv, { front = false } = {}) {
    const i = state.conversations.findIndex((c) => c.id === conv.id);
    if (i >= 0) state.conversations[i] = { ...state.conversations[i], ...conv };
    else if (front) state.conversations.unshift(conv);
    else state.conversations.push(conv);
    emit("conversations");
    if (conv.id === state.currentKey) emit("title");
  }

  function removeConversation(id) {
    state.conversations = state.conversations.filter((c) => c.id !== id);
    state.threads.delete(id);
    emit("conversations");
  }

  return { state, emit, on, thread, isCurrent, currentConversation, rekey, upsertConversation, removeConversation };
}

export function userMessage(text) {
  return {
    key: uuid(), id: null, role: "user", content: text, status: "complete", tools: [], offline: false,
    model: null, runId: null, error: null, createdAt: new Date().toISOString(),
  };
}

export function assistantMessage(fields) {
  return { key: uuid(), ...newAssistant(fields) };
}

export function withKeys(messages) {
  return messages.map((m) => ({ key: uuid(), notice: null, ...m }));
}

/** Apply one common event to the assistant message of a run. Returns true if it changed. */
export function applyEvent(msg, ev) {
  switch (ev.kind) {
    case "created":
      if (ev.assistantMessageId) msg.id = ev.assistantMessageId;
      msg.runId = ev.runId || msg.runId;
      return true;
    case "assistant":
      if (ev.id) msg.id = ev.id;
      return false;
    case "start":
      msg.offline = msg.offline || !!ev.offline;
      if (ev.model) msg.model = ev.model;
      return true;
    case "text":
      msg.content += ev.delta;
      msg.notice = null;
      return true;
    case "tool_start": {
      const existing = msg.tools.find((t) => t.callId === ev.callId);
      if (existing) return false;
      msg.tools.push({
        callId: ev.callId, name: ev.name, title: ev.title, args: ev.args || {}, state: "running",
        durationMs: null, summary: "", truncated: false, startedAt: performance.now(),
      });
      return true;
    }
    case "tool_end": {
      let tool = msg.tools.find((t) => t.callId === ev.callId);
      if (!tool) {
        tool = { callId: ev.callId, name: ev.name, title: ev.title, args: {}, startedAt: null };
        msg.tools.push(tool);
      }
      tool.state = ev.ok === false ? "error" : "ok";
      tool.summary = ev.summary || tool.summary || "";
      tool.truncated = !!ev.truncated;
      if (typeof ev.durationMs === "number") tool.durationMs = ev.durationMs;
      else if (tool.startedAt != null) tool.durationMs = performance.now() - tool.startedAt;
      return true;
    }
    case "info":
      if (!ev.text) return false;
      msg.notice = ev.text;
      return true;
    case "done":
      if (typeof ev.finalText === "string" && ev.finalText) msg.content = ev.finalText;
      if (ev.model) msg.model = ev.model;
      msg.status = "complete";
      msg.error = null;
      msg.notice = null;
      finishTools(msg, "ok");
      return true;
    case "error": {
      if (ev.partialText && ev.partialText.length > msg.content.length) msg.content = ev.partialText;
      msg.status = statusForFailure(ev.code);
      msg.notice = null;
      finishTools(msg, "error");
      msg.error = msg.status === "cancelled" ? null : {
        message: ev.message,
        code: ev.code || null,
        errorType: ev.errorType || errorTypeFor(ev.code),
        retryable: !!ev.retryable,
        retryAfterMs: ev.retryAfterMs ?? null,
        retryAt: ev.retryAfterMs ? Date.now() + ev.retryAfterMs : null,
      };
      return true;
    }
    default:
      return false;
  }
}

function finishTools(msg, state) {
  for (const t of msg.tools) {
    if (t.state === "running") {
      t.state = state;
      if (t.startedAt != null && t.durationMs == null) t.durationMs = performance.now() - t.startedAt;
    }
  }
}

/** Reset an assistant message for a replay from the start of its run. */
export function resetForReplay(msg) {
  msg.content = "";
  msg.tools = [];
  msg.status = "streaming";
  msg.error = null;
  msg.notice = null;
}
