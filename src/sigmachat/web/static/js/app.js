// The chat page: wires the store, the backend for this user (legacy SSE or ChatKit), the turn
// controller and the renderers to the DOM of index.html.

import { ApiError, api, onAuthLost, request } from "./api.js";
import { createChatKitBackend } from "./chatkit.js";
import { loadCatalog } from "./events.js";
import { h, icon, uuid } from "./dom.js";
import { createLegacyBackend } from "./legacy.js";
import { conversationTitle, patchMessage, renderConversationList, renderThread } from "./render.js";
import { createStore, withKeys } from "./state.js";
import { createTurns } from "./turns.js";
import { bindThemeToggle } from "./theme-toggle.js";

const $ = (id) => document.getElementById(id);
const PAGE_SIZE = 20;

const els = {
  app: $("app"),
  sidebar: $("sidebar"),
  sidebarToggle: $("sidebar-toggle"),
  scrim: $("scrim"),
  list: $("conversation-list"),
  listEmpty: $("conversations-empty"),
  loadMore: $("load-more"),
  newChat: $("new-chat"),
  portfolio: $("portfolio-select"),
  backendTag: $("backend-tag"),
  theme: $("theme-toggle"),
  userName: $("user-name"),
  signOut: $("sign-out"),
  title: $("chat-title"),
  chatPortfolio: $("chat-portfolio"),
  messages: $("messages"),
  banner: $("banner"),
  composer: $("composer"),
  input: $("composer-input"),
  count: $("composer-count"),
  send: $("send-btn"),
  stop: $("stop-btn"),
  announcer: $("announcer"),
  renameDialog: $("rename-dialog"),
  renameInput: $("rename-input"),
  renameForm: $("rename-form"),
  renameCancel: $("rename-cancel"),
  deleteDialog: $("delete-dialog"),
  deleteName: $("delete-name"),
  mode: $("mode-select"),
  memoriesOpen: $("memories-open"),
  memoriesDialog: $("memories-dialog"),
  memoryList: $("memory-list"),
  memoriesEmpty: $("memories-empty"),
  memoriesCount: $("memories-count"),
  memoriesClear: $("memories-clear"),
};

const store = createStore();
const { state } = store;
let backend = null;
let turns = null;
let leaving = false;

// ---- session -----------------------------------------------------------------------------

function goToLogin(reason = "expired") {
  if (leaving) return;
  leaving = true;
  window.location.replace(`/login?${reason}=1`);
}

onAuthLost(() => goToLogin("expired"));

function announce(text) {
  els.announcer.textContent = "";
  // A fresh text node each time so screen readers announce repeats too.
  setTimeout(() => { els.announcer.textContent = text; }, 30);
}

// ---- theme -------------------------------------------------------------------------------

bindThemeToggle(els.theme);

// ---- rendering ---------------------------------------------------------------------------

const messageActions = {
  retry: (msg) => turns.retry(msg).then(focusInput),
  rate: rateAnswer,
};

/** Thumbs up/down; pressing the active one again removes the rating. */
async function rateAnswer(msg, rating) {
  const previous = msg.feedback || null;
  const next = previous === rating ? null : rating;
  msg.feedback = next;
  scheduleMessage(msg);
  try {
    if (next) await api.rate(msg.id, next);
    else await api.unrate(msg.id);
    announce(next ? "Thanks for the feedback." : "Rating removed.");
  } catch (err) {
    msg.feedback = previous;
    scheduleMessage(msg);
    if (!(err instanceof ApiError && err.status === 401)) announce(`Couldn't save the rating: ${err.message}`);
  }
}

function currentThread() {
  return store.thread(state.currentKey);
}

function portfolioName(id = state.portfolioId) {
  const p = state.portfolios.find((x) => x.id === id);
  return p ? p.name : "";
}

function renderList() {
  const busy = new Set([...state.threads.entries()].filter(([, t]) => t.turn).map(([k]) => k));
  renderConversationList(els.list, { conversations: state.conversations, currentKey: state.currentKey, busyKeys: busy }, {
    open: (id) => { openConversation(id); closeSidebar(); },
    rename: openRename,
    remove: openDelete,
  });
  els.listEmpty.hidden = !state.conversationsLoaded || state.conversations.length > 0;
  els.loadMore.hidden = !state.nextCursor;
}

function renderTitle() {
  const conv = store.currentConversation();
  const title = conv ? conversationTitle(conv) : "New conversation";
  els.title.textContent = title;
  document.title = conv && conv.title ? `${conv.title} · SigmaSight Chat` : "SigmaSight Chat";
  const pid = (conv && conv.portfolioId) || state.portfolioId;
  els.chatPortfolio.textContent = portfolioName(pid);
  els.mode.value = (conv && conv.mode) || state.draftMode;
}

// ---- analyst style (mode) ------------------------------------------------------------------

els.mode.addEventListener("change", async () => {
  const mode = els.mode.value;
  const conv = store.currentConversation();
  if (!conv) {
    state.draftMode = mode; // used when the first message creates the conversation
    return;
  }
  await applyMode(conv, mode);
});

async function applyMode(conv, mode) {
  const previous = conv.mode || "green";
  store.upsertConversation({ ...conv, mode });
  try {
    await api.setMode(conv.id, mode);
    announce(`Style changed to ${els.mode.selectedOptions[0] ? els.mode.selectedOptions[0].textContent : mode}; it applies from the next answer.`);
  } catch (err) {
    store.upsertConversation({ ...conv, mode: previous });
    if (store.isCurrent(conv.id)) els.mode.value = previous;
    if (!(err instanceof ApiError && err.status === 401)) announce(`Couldn't change the style: ${err.message}`);
  }
}

/** A conversation just created from a draft: make sure it carries the style picked for it.
 * (Both paths take the mode at creation; this only repairs a draft changed while sending.) */
function onConversationCreated(conv) {
  if ((conv.mode || "green") !== state.draftMode) applyMode({ ...conv, mode: conv.mode || "green" }, state.draftMode);
}

// ---- memories ------------------------------------------------------------------------------

async function openMemories() {
  els.memoryList.replaceChildren();
  els.memoriesEmpty.hidden = true;
  els.memoriesCount.textContent = "";
  if (!els.memoriesDialog.open) els.memoriesDialog.showModal();
  try {
    renderMemories(await api.memories());
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) els.memoriesCount.textContent = "Couldn't load them.";
  }
}

function renderMemories(body) {
  const items = body.memories || [];
  els.memoryList.replaceChildren(...items.map((m) => h("li", { class: "memory-item", dataset: { id: m.id } },
    h("span", { class: "memory-text" }, m.content),
    h("button", {
      type: "button", class: "icon-btn small danger", "aria-label": `Forget “${m.content}”`,
      onclick: async () => {
        try { await api.deleteMemory(m.id); } catch (err) { announce(`Couldn't delete: ${err.message}`); }
        openMemories();
      },
    }, icon("trash")),
  )));
  els.memoriesEmpty.hidden = items.length > 0;
  els.memoriesClear.disabled = items.length === 0;
  els.memoriesCount.textContent = items.length ? `${body.total} saved.` : "";
}

els.memoriesOpen.addEventListener("click", () => { openMemories(); closeSidebar(); });
els.memoriesClear.addEventListener("click", async () => {
  try { await api.clearMemories(); announce("Memories cleared."); } catch (err) { announce(`Couldn't clear: ${err.message}`); }
  openMemories();
});

function isNearBottom() {
  const m = els.messages;
  return m.scrollHeight - m.scrollTop - m.clientHeight < 120;
}

function scrollToBottom(force = false) {
  if (force || stickToBottom) els.messages.scrollTop = els.messages.scrollHeight;
}

let stickToBottom = true;
els.messages.addEventListener("scroll", () => { stickToBottom = isNearBottom(); });

function renderMessages() {
  renderThread(els.messages, currentThread(), { portfolioName: portfolioName(), onPick: pickStarter }, messageActions);
  stickToBottom = true;
  scrollToBottom(true);
}

// Streaming updates arrive faster than frames: re-render each changed message once per frame.
const dirty = new Set();
let frame = 0;
function scheduleMessage(msg) {
  dirty.add(msg);
  if (!frame) frame = requestAnimationFrame(flushMessages);
}
function flushMessages() {
  frame = 0;
  const thread = currentThread();
  for (const msg of dirty) {
    if (thread && thread.messages.includes(msg)) patchMessage(els.messages, msg, messageActions);
  }
  dirty.clear();
  scrollToBottom();
}

function renderComposer() {
  const thread = currentThread();
  const turn = thread && thread.turn;
  els.send.hidden = !!turn;
  els.stop.hidden = !turn;
  els.stop.disabled = !!(turn && turn.stopRequested);
  els.stop.setAttribute("aria-label", turn && turn.stopRequested ? "Stopping…" : "Stop generating");
  const length = els.input.value.length;
  const over = length > state.maxMessageChars;
  // The limit shows before it is reached, and a longer text is refused here with its length,
  // never cut: the user decides what to drop.
  els.count.hidden = length < state.maxMessageChars * 0.8;
  els.count.classList.toggle("is-over", over);
  els.count.textContent = over
    ? `${length.toLocaleString()} of ${state.maxMessageChars.toLocaleString()} characters: shorten your message to send it.`
    : `${length.toLocaleString()} / ${state.maxMessageChars.toLocaleString()} characters`;
  els.send.disabled = !els.input.value.trim() || over || !state.user;
  els.composer.classList.toggle("is-streaming", !!turn);
  renderList();
}

function renderBanner() {
  const thread = currentThread();
  const banner = thread && thread.banner;
  els.banner.hidden = !banner;
  els.banner.className = `banner${banner ? ` banner-${banner.kind}` : ""}`;
  els.banner.replaceChildren();
  if (banner) {
    if (banner.kind === "reconnecting") els.banner.append(h("span", { class: "spinner", "aria-hidden": "true" }));
    els.banner.append(h("span", null, banner.text));
  }
}

store.on("conversations", renderList);
store.on("title", () => { setHash(state.currentKey); renderTitle(); renderList(); });
store.on("thread", () => { renderMessages(); renderComposer(); });
store.on("message", scheduleMessage);
store.on("composer", () => {
  renderComposer();
  const thread = currentThread();
  if (thread && !thread.turn && els.messages.contains(document.activeElement) === false) focusInput();
});
store.on("banner", renderBanner);

// Rate-limit countdowns tick once a second.
setInterval(() => {
  const thread = currentThread();
  if (!thread) return;
  const now = Date.now();
  for (const msg of thread.messages) {
    if (msg.error && msg.error.retryAt && msg.error.retryAt > now - 1500) scheduleMessage(msg);
  }
}, 1000);

// ---- conversations -----------------------------------------------------------------------

function setHash(key) {
  const hash = key && !key.startsWith("draft:") ? `#/c/${encodeURIComponent(key)}` : "#/";
  if (location.hash !== hash) history.replaceState(null, "", hash);
}

function hashConversation() {
  const m = /^#\/c\/([^/]+)$/.exec(location.hash);
  return m ? decodeURIComponent(m[1]) : null;
}

async function loadConversations({ more = false } = {}) {
  try {
    const page = await backend.listConversations({ limit: PAGE_SIZE, before: more ? state.nextCursor : null });
    const known = new Set(state.conversations.map((c) => c.id));
    if (!more) {
      // Keep conversations created during this visit that the first page does not include.
      const fresh = page.items;
      const extra = state.conversations.filter((c) => !fresh.some((f) => f.id === c.id));
      state.conversations = [...extra, ...fresh];
    } else {
      state.conversations.push(...page.items.filter((c) => !known.has(c.id)));
    }
    state.nextCursor = page.nextCursor;
    state.conversationsLoaded = true;
    renderList();
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) showListError();
  }
}

function showListError() {
  els.listEmpty.hidden = false;
  els.listEmpty.textContent = "Couldn't load conversations.";
}

function newDraft() {
  const key = `draft:${uuid()}`;
  state.draftMode = "green";
  store.thread(key).loaded = true;
  state.currentKey = key;
  setHash(key);
  renderTitle();
  renderList();
  renderMessages();
  renderComposer();
  renderBanner();
  focusInput();
}

async function openConversation(id) {
  if (state.currentKey === id) return;
  state.currentKey = id;
  setHash(id);
  const conv = store.currentConversation();
  if (conv && conv.portfolioId && state.portfolios.some((p) => p.id === conv.portfolioId)) selectPortfolio(conv.portfolioId, { save: false });
  else syncPortfolio(id);
  renderTitle();
  renderList();
  renderComposer();
  renderBanner();
  const thread = store.thread(id);
  if (thread.loaded || thread.turn) {
    renderMessages();
    return;
  }
  thread.loading = true;
  renderMessages();
  try {
    thread.messages = withKeys(await backend.loadMessages(id));
    thread.loaded = true;
    thread.loadError = null;
  } catch (e) {
    thread.loadError = e instanceof ApiError && e.status === 404 ? "This conversation no longer exists." : "Couldn't load this conversation. Try again.";
    if (e instanceof ApiError && e.status === 404) store.removeConversation(id);
  } finally {
    thread.loading = false;
  }
  if (!store.isCurrent(id)) return;
  if (conv && conv.mode === undefined) {
    // ChatKit's thread list does not carry the analyst style; the shared record does.
    try {
      const c = await api.conversation(id);
      store.upsertConversation({ id: c.id, mode: c.mode });
    } catch { /* the picker shows the default */ }
  } else if (!conv) {
    // Opened by link or reload and not on the first page of the list: fetch its summary.
    try {
      const c = await api.conversation(id);
      store.upsertConversation({ id: c.id, title: c.title, portfolioId: c.portfolio_id, createdAt: c.created_at, updatedAt: c.updated_at, mode: c.mode }, { front: true });
      renderTitle();
    } catch { /* the list will do */ }
  }
  renderMessages();
  renderTitle();
  // An answer still being written (a reload mid-stream): pick it up where the server is.
  const last = [...thread.messages].reverse().find((m) => m.role === "assistant");
  if (last && last.status === "streaming" && last.runId) {
    turns.attach(id, last).then(focusInput);
  }
}

function openRename(conv) {
  els.renameInput.value = conv.title || "";
  els.renameDialog.dataset.id = conv.id;
  els.renameDialog.showModal();
  els.renameInput.select();
}

els.renameCancel.addEventListener("click", () => els.renameDialog.close("cancel"));
els.renameForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  const id = els.renameDialog.dataset.id;
  const title = els.renameInput.value.trim();
  if (!title) return;
  els.renameDialog.close("save");
  try {
    const updated = await backend.rename(id, title);
    store.upsertConversation({ ...updated, title: updated.title || title });
    announce("Conversation renamed.");
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) announce(`Couldn't rename: ${err.message}`);
  }
});

function openDelete(conv) {
  els.deleteName.textContent = conversationTitle(conv);
  els.deleteDialog.dataset.id = conv.id;
  els.deleteDialog.returnValue = "";
  els.deleteDialog.showModal();
}

els.deleteDialog.addEventListener("close", async () => {
  if (els.deleteDialog.returnValue !== "delete") return;
  const id = els.deleteDialog.dataset.id;
  try {
    await backend.remove(id);
    store.removeConversation(id);
    announce("Conversation deleted.");
    if (state.currentKey === id) newDraft();
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) announce(`Couldn't delete: ${err.message}`);
  }
});

els.loadMore.addEventListener("click", () => loadConversations({ more: true }));
els.newChat.addEventListener("click", () => { newDraft(); closeSidebar(); });

// ---- portfolios --------------------------------------------------------------------------

function money(v) {
  if (typeof v !== "number") return "";
  const abs = Math.abs(v);
  const fmt = abs >= 1e9 ? `${(v / 1e9).toFixed(2)}B` : abs >= 1e6 ? `${(v / 1e6).toFixed(1)}M` : abs >= 1e3 ? `${(v / 1e3).toFixed(0)}K` : v.toFixed(0);
  return `$${fmt}`;
}

/** A conversation whose portfolio the list did not say (ChatKit threads): ask, then follow it. */
async function syncPortfolio(id) {
  try {
    const c = await api.conversation(id);
    if (!c || !c.portfolio_id || state.currentKey !== id) return;
    const known = store.currentConversation();
    store.upsertConversation({ ...(known || { id, title: c.title, createdAt: c.created_at, updatedAt: c.updated_at }), portfolioId: c.portfolio_id });
    if (state.portfolios.some((p) => p.id === c.portfolio_id)) selectPortfolio(c.portfolio_id, { save: false });
  } catch { /* the list and the next send still work; the server keeps the conversation's portfolio */ }
}

function selectPortfolio(id, { save = true } = {}) {
  state.portfolioId = id;
  els.portfolio.value = id || "";
  if (save && state.user) {
    try { localStorage.setItem(`sigmachat.portfolio.${state.user.id}`, id); } catch { /* ignore */ }
  }
  renderTitle();
}

function renderPortfolios() {
  els.portfolio.replaceChildren();
  if (!state.portfolios.length) {
    els.portfolio.append(h("option", { value: "" }, "No portfolios"));
    els.portfolio.disabled = true;
    return;
  }
  for (const p of state.portfolios) {
    els.portfolio.append(h("option", { value: p.id }, `${p.name}${p.nav ? ` · ${money(p.nav)}` : ""}`));
  }
  els.portfolio.disabled = false;
  let saved = null;
  try { saved = localStorage.getItem(`sigmachat.portfolio.${state.user.id}`); } catch { /* ignore */ }
  selectPortfolio(state.portfolios.some((p) => p.id === saved) ? saved : state.portfolios[0].id, { save: false });
}

els.portfolio.addEventListener("change", () => {
  const id = els.portfolio.value;
  const conv = store.currentConversation();
  selectPortfolio(id);
  // A conversation belongs to one portfolio (the server refuses a send naming another): a
  // different portfolio gets a conversation of its own, so header, selector and the stored
  // conversation always agree.
  if (conv && conv.portfolioId !== id) {
    newDraft();
    return;
  }
  const thread = currentThread();
  if (thread && !thread.messages.length) renderMessages();
});

// ---- composer ----------------------------------------------------------------------------

function focusInput() {
  if (window.matchMedia("(pointer: coarse)").matches && document.activeElement !== els.input) return;
  els.input.focus();
}

function autosize() {
  els.input.style.height = "auto";
  els.input.style.height = `${Math.min(els.input.scrollHeight, 200)}px`;
}

function submit() {
  const text = els.input.value.trim();
  const thread = currentThread();
  if (!text || !thread || thread.turn || text.length > state.maxMessageChars) return;
  els.input.value = "";
  autosize();
  renderComposer();
  refreshBackend().then(() => turns.ask(text)).then(focusInput);
  focusInput();
}

function pickStarter(text) {
  els.input.value = text;
  submit();
}

els.input.addEventListener("input", () => { autosize(); renderComposer(); });
els.input.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    submit();
  }
});
els.composer.addEventListener("submit", (e) => { e.preventDefault(); submit(); });
els.stop.addEventListener("click", () => { turns.stop(); focusInput(); });
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && currentThread() && currentThread().turn && !els.renameDialog.open && !els.deleteDialog.open && !els.memoriesDialog.open) turns.stop();
});

// ---- layout (narrow screens) -------------------------------------------------------------

function openSidebar() {
  els.app.classList.add("sidebar-open");
  els.sidebarToggle.setAttribute("aria-expanded", "true");
  els.scrim.hidden = false;
  els.newChat.focus();
}

function closeSidebar() {
  if (!els.app.classList.contains("sidebar-open")) return;
  els.app.classList.remove("sidebar-open");
  els.sidebarToggle.setAttribute("aria-expanded", "false");
  els.scrim.hidden = true;
}

els.sidebarToggle.addEventListener("click", () => (els.app.classList.contains("sidebar-open") ? closeSidebar() : openSidebar()));
els.scrim.addEventListener("click", closeSidebar);
document.addEventListener("keydown", (e) => { if (e.key === "Escape") closeSidebar(); });

// ---- sign out ----------------------------------------------------------------------------

els.signOut.addEventListener("click", async () => {
  leaving = true;
  try { await api.logout(); } catch { /* the cookie may already be gone */ }
  window.location.replace("/login?signed_out=1");
});

window.addEventListener("hashchange", () => {
  const id = hashConversation();
  if (id && id !== state.currentKey) openConversation(id);
  else if (!id && !(state.currentKey || "").startsWith("draft:")) newDraft();
});

// ---- start -------------------------------------------------------------------------------

async function start() {
  let me, config, portfolios;
  try {
    [me, config, portfolios] = await Promise.all([api.me(), api.chatConfig(""), api.portfolios(), loadCatalog(request)]);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return;
    els.messages.replaceChildren(h("div", { class: "msg-error", role: "alert" }, "Couldn't reach the server. Reload the page to try again."));
    return;
  }
  state.user = me;
  if (config && Number.isInteger(config.max_message_chars)) state.maxMessageChars = config.max_message_chars;
  useBackend(config);
  turns = createTurns({ store, getBackend: () => backend, onAuthLost: () => goToLogin("expired"), announce, onConversationCreated });
  els.userName.textContent = me.full_name || me.email;
  els.userName.title = me.email;
  $("admin-link").hidden = me.role !== "admin"; // the admin APIs check the role; this only hides the link
  state.portfolios = portfolios;
  renderPortfolios();
  const target = hashConversation();
  if (target) openConversation(target);
  else newDraft();
  await loadConversations();
  els.app.dataset.ready = "true";
}

/** Speak the protocol the rollout assigns ({backend, reason, flag_version}). */
function useBackend(config) {
  const kind = config && config.backend === "chatkit" ? "chatkit" : "responses";
  state.offlineHint = !!(config && (config.offline || config.offline_model));
  if (backend && state.backend === kind) return;
  state.backend = kind;
  backend = kind === "chatkit" ? createChatKitBackend() : createLegacyBackend();
  els.backendTag.textContent = kind === "chatkit" ? "ChatKit" : "Responses";
  els.backendTag.title = `Chat protocol for this session${config && config.reason ? ` (${config.reason})` : ""}`;
  els.backendTag.hidden = false;
  els.app.dataset.backend = kind;
}

/** The flag is evaluated per turn on the server; ask before each new question. */
async function refreshBackend() {
  try {
    const q = state.portfolioId ? `?portfolio_id=${encodeURIComponent(state.portfolioId)}` : "";
    useBackend(await api.chatConfig(q));
  } catch { /* keep the current one: both paths share the history */ }
}

start();
