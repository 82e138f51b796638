// The lifecycle of one answer: send, stream, survive drops (idempotent re-send before the
// run exists, resume by Last-Event-ID after), stop, and fail by the error taxonomy.

import { ApiError, NetworkError, isAbort } from "./api.js";
import { sleep, uuid } from "./dom.js";
import { applyEvent, assistantMessage, resetForReplay, userMessage, withKeys } from "./state.js";

const SEND_RETRIES = 3; // network failures before the run exists (safe: client_message_id)
const RESUME_RETRIES = 6; // reconnects of a dropped stream before giving up
const STOP_GRACE_MS = 6000;

/** Jittered exponential backoff: ~0.5 s, 1 s, 2 s, 4 s … capped at 8 s. */
export function backoff(attempt, base = 500, cap = 8000) {
  const d = Math.min(cap, base * 2 ** (attempt - 1));
  return d / 2 + Math.random() * (d / 2);
}

/**
 * `getBackend()` answers the protocol client for the next turn: the rollout flag may move a
 * user between paths at any time, and both share one history, so each turn asks afresh while
 * a running turn keeps the client it started with (turn.backend).
 */
export function createTurns({ store, getBackend, onAuthLost, announce, requestHeaders = () => ({}), onConversationCreated = () => {} }) {
  const { state } = store;

  function changed(key, msg) {
    if (store.isCurrent(key)) store.emit("message", msg);
  }

  function setBanner(key, banner) {
    const t = store.thread(key);
    t.banner = banner;
    if (store.isCurrent(key)) store.emit("banner", banner);
  }

  function setTurn(key, turn) {
    store.thread(key).turn = turn;
    if (store.isCurrent(key)) store.emit("composer");
  }

  /** Ask a question in the current conversation (creating it on the first message). */
  async function ask(text) {
    const key = state.currentKey;
    const thread = store.thread(key);
    if (thread.turn) return;
    const user = userMessage(text);
    const asst = assistantMessage({ offline: false });
    thread.messages.push(user, asst);
    store.emit("thread");
    await drive({ key, text, user, asst, clientMessageId: uuid(), mode: "send" });
  }

  /** Retry a failed answer. */
  async function retry(asst) {
    const key = state.currentKey;
    const thread = store.thread(key);
    if (thread.turn) return;
    const i = thread.messages.indexOf(asst);
    const user = thread.messages.slice(0, i).reverse().find((m) => m.role === "user");
    if (!user) return;
    if (asst.id && getBackend().retryAfter && user.id) {
      // The protocol can re-answer the same question (ChatKit threads.retry_after_item).
      thread.messages.splice(i + 1);
      resetForReplay(asst);
      store.emit("thread");
      await drive({ key, text: user.content, user, asst, clientMessageId: uuid(), mode: "retry" });
    } else if (asst.id) {
      // The failed question is stored; ask it again as a new turn, as the history will show.
      await ask(user.content);
    } else {
      // Nothing reached the server (rejected or unreachable): send the same question again.
      resetForReplay(asst);
      store.emit("thread");
      await drive({ key, text: user.content, user, asst, clientMessageId: uuid(), mode: "send" });
    }
  }

  /** Follow a run that is already going (page reload, a second tab, a 409). */
  async function attach(key, asst) {
    const thread = store.thread(key);
    if (thread.turn || !asst.runId) return;
    resetForReplay(asst);
    changed(key, asst);
    const turn = { key, asst, runId: asst.runId, lastSeq: 0, ctrl: new AbortController(), stopRequested: false, backend: getBackend(), conversationId: key };
    setTurn(key, turn);
    try {
      await follow(turn, { terminal: false });
    } finally {
      endTurn(turn);
    }
  }

  async function drive({ key, text, user, asst, clientMessageId, mode }) {
    const turn = {
      key, user, asst, runId: null, lastSeq: 0, ctrl: new AbortController(), stopRequested: false,
      conversationId: key.startsWith("draft:") ? null : key, backend: getBackend(),
    };
    // A conversation's portfolio is fixed: an existing one keeps its own, a new one takes the selector's.
    const bound = state.conversations.find((c) => c.id === turn.conversationId);
    // (An existing conversation whose portfolio is unknown here sends none: the server uses its own.)
    turn.portfolioId = bound && bound.portfolioId ? bound.portfolioId : turn.conversationId ? null : state.portfolioId;
    const backend = turn.backend;
    setTurn(key, turn);
    const onEvent = (ev) => handle(turn, ev);
    let result = null;
    try {
      for (let attempt = 0; ; attempt++) {
        try {
          const args = {
            conversationId: turn.conversationId, text, portfolioId: turn.portfolioId, mode: state.draftMode, clientMessageId,
            onEvent, signal: turn.ctrl.signal, headers: requestHeaders(), userItemId: user.id,
          };
          result = mode === "retry" ? await backend.retryAfter(args) : await backend.send(args);
          break;
        } catch (e) {
          if (isAbort(e)) return stopped(turn);
          if (e instanceof NetworkError && attempt < SEND_RETRIES && !turn.stopRequested) {
            setBanner(key, { kind: "reconnecting", text: "Can't reach the server. Retrying…" });
            await sleep(backoff(attempt + 1), turn.ctrl.signal).catch(() => {});
            if (turn.ctrl.signal.aborted) return stopped(turn);
            continue;
          }
          return failFromRequest(turn, e);
        }
      }
      if (result.runId && !turn.runId) turn.runId = result.runId;
      await follow(turn, result);
    } finally {
      endTurn(turn);
      refreshTitle(turn);
    }
  }

  /** The server titles a conversation from its first question; show that title. */
  async function refreshTitle(turn) {
    const id = turn.conversationId;
    const conv = id && state.conversations.find((c) => c.id === id);
    if (!conv || conv.title || !turn.backend.conversation) return;
    try {
      const fresh = await turn.backend.conversation(id);
      if (fresh.title) store.upsertConversation({ ...conv, title: fresh.title, updatedAt: fresh.updatedAt || conv.updatedAt });
    } catch { /* keep the placeholder title */ }
  }

  /** Keep reading until the run's terminal event, resuming after drops. */
  async function follow(turn, result) {
    let drops = 0;
    const onEvent = (ev) => handle(turn, ev);
    while (!result.terminal) {
      if (turn.ctrl.signal.aborted) return stopped(turn);
      if (!turn.runId) {
        return fail(turn, { code: "network_error", errorType: "NETWORK_ERROR", retryable: true, message: "The connection dropped before the answer started. Try again." });
      }
      drops++;
      if (drops > RESUME_RETRIES) {
        return fail(turn, { code: "network_error", errorType: "NETWORK_ERROR", retryable: true, message: "Lost the connection to the server. Try again." });
      }
      setBanner(turn.key, { kind: "reconnecting", text: "Connection lost. Reconnecting…" });
      try {
        await sleep(drops === 1 ? 150 : backoff(drops - 1), turn.ctrl.signal);
        result = await turn.backend.resume({ runId: turn.runId, afterSeq: turn.lastSeq, onEvent, signal: turn.ctrl.signal });
      } catch (e) {
        if (isAbort(e)) return stopped(turn);
        if (e instanceof NetworkError) { result = { terminal: false }; continue; }
        if (e instanceof ApiError && e.status === 404) {
          return fail(turn, { code: "not_found", errorType: "FATAL_ERROR", retryable: false, message: "This answer is no longer available." });
        }
        return failFromRequest(turn, e);
      }
      if (result.expired) {
        // The run's log is gone; show what was saved instead.
        if (result.message) Object.assign(turn.asst, result.message, { key: turn.asst.key });
        changed(turn.key, turn.asst);
        return;
      }
    }
    if (turn.backend.finalize) {
      try { await turn.backend.finalize(turn); changed(turn.key, turn.asst); } catch { /* enrichment is best-effort */ }
    }
  }

  function handle(turn, ev) {
    const { key, asst } = turn;
    if (ev.kind === "heartbeat") return;
    if (ev.kind === "conversation") {
      turn.conversationId = ev.conversation.id;
      store.upsertConversation({ ...ev.conversation, portfolioId: ev.conversation.portfolioId || turn.portfolioId }, { front: true });
      onConversationCreated(ev.conversation);
      if (key !== ev.conversation.id) {
        store.rekey(key, ev.conversation.id);
        turn.key = ev.conversation.id;
      }
      return;
    }
    if (ev.kind === "title") {
      const conv = state.conversations.find((c) => c.id === (ev.conversationId || turn.conversationId));
      if (conv) store.upsertConversation({ ...conv, title: ev.title });
      return;
    }
    if (ev.kind === "created") {
      turn.runId = ev.runId || turn.runId;
      if (ev.userMessageId && turn.user) turn.user.id = ev.userMessageId;
      refreshTitle(turn); // the server titles a new conversation as the run starts
    }
    if (ev.runId && !turn.runId) turn.runId = ev.runId;
    if (typeof ev.seq === "number" && ev.seq > turn.lastSeq) turn.lastSeq = ev.seq;
    if (ev.kind === "error" && turn.stopRequested && !ev.code) ev.code = "cancelled";
    const thread = store.thread(turn.key);
    if (thread.banner && thread.banner.kind === "reconnecting") setBanner(turn.key, null);
    if (applyEvent(asst, ev)) changed(turn.key, asst);
    if (ev.kind === "done") announce("Answer complete.");
    if (ev.kind === "error") {
      if (ev.errorType === "AUTH_EXPIRED") onAuthLost();
      else if (asst.status === "cancelled") announce("Stopped.");
      else announce(`Error: ${ev.message || "the answer failed"}`);
    }
  }

  function fail(turn, err) {
    applyEvent(turn.asst, { kind: "error", ...err });
    changed(turn.key, turn.asst);
    announce(`Error: ${err.message}`);
  }

  function failFromRequest(turn, e) {
    if (e instanceof ApiError) {
      if (e.status === 401) return; // onAuthLost (api.js) is taking the user to sign-in
      if (e.status === 409 && e.details && e.details.active_run_id) return adoptActiveRun(turn, e.details.active_run_id);
      const errorType = e.status === 429 ? "RATE_LIMITED" : e.status >= 500 ? "SERVER_ERROR" : "FATAL_ERROR";
      const retryable = e.status === 429 || e.status >= 500;
      const message = e.status === 429 && !e.retryAfterMs ? e.message : e.message;
      return fail(turn, { code: e.code, errorType, retryable, retryAfterMs: e.retryAfterMs, message });
    }
    if (e instanceof NetworkError) {
      return fail(turn, { code: "network_error", errorType: "NETWORK_ERROR", retryable: true, message: "Can't reach the server. Check your connection and try again." });
    }
    return fail(turn, { code: "internal_error", errorType: "SERVER_ERROR", retryable: true, message: "Something went wrong. Try again." });
  }

  /** 409: an answer is already being written here. Show it instead of a second one. */
  async function adoptActiveRun(turn, runId) {
    const thread = store.thread(turn.key);
    thread.messages = thread.messages.filter((m) => m !== turn.user && m !== turn.asst);
    endTurn(turn);
    setBanner(turn.key, { kind: "info", text: "An answer is already being written in this conversation; showing it." });
    const id = turn.conversationId || turn.key;
    try {
      thread.messages = withKeys(await turn.backend.loadMessages(id));
    } catch { /* keep what we have */ }
    let asst = thread.messages.find((m) => m.role === "assistant" && m.runId === runId);
    if (!asst) {
      asst = assistantMessage({ runId });
      thread.messages.push(asst);
    }
    store.emit("thread");
    await attach(turn.key, asst);
  }

  function stopped(turn) {
    if (turn.asst.status === "streaming") {
      turn.asst.status = "cancelled";
      turn.asst.notice = null;
      for (const t of turn.asst.tools) if (t.state === "running") t.state = "error";
      changed(turn.key, turn.asst);
      announce("Stopped.");
    }
  }

  function endTurn(turn) {
    const thread = store.thread(turn.key);
    if (thread.turn === turn) {
      if (turn.stopTimer) clearTimeout(turn.stopTimer);
      if (turn.asst.status === "streaming") stopped(turn);
      if (thread.banner && thread.banner.kind === "reconnecting") setBanner(turn.key, null);
      setTurn(turn.key, null);
    }
  }

  /** Stop the current answer: cancel the run on the server, keep the partial answer. */
  async function stop(key = state.currentKey) {
    const turn = store.thread(key).turn;
    if (!turn || turn.stopRequested) return;
    turn.stopRequested = true;
    store.emit("composer");
    // If the server does not confirm in time, stop listening anyway.
    turn.stopTimer = setTimeout(() => turn.ctrl.abort(), STOP_GRACE_MS);
    if (!turn.runId) {
      turn.ctrl.abort();
      return;
    }
    try {
      // "already_finished" needs nothing more: the run's own final event is on its way.
      await turn.backend.cancel(turn.runId);
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) turn.ctrl.abort();
    }
  }

  return { ask, retry, attach, stop, backoff };
}
