// REST calls to our own API. The session is the HttpOnly cookie, so every call is same-origin
// with credentials; the browser adds Origin to POST/PATCH/DELETE, which passes the server's
// CSRF check. Errors come back as ApiError with the server's taxonomy code.

export class ApiError extends Error {
  constructor({ status = 0, code = "error", message = "Request failed.", details = null, retryAfterMs = null } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details;
    this.retryAfterMs = retryAfterMs;
  }

  get isAuth() { return this.status === 401; }
}

/** The network itself failed (offline, connection reset, server down): safe to retry. */
export class NetworkError extends Error {
  constructor(message = "The connection to the server was lost.", cause) {
    super(message);
    this.name = "NetworkError";
    this.cause = cause;
  }
}

let authLostHandler = null;

/** Called once with the ApiError when any request answers 401 (session expired or gone). */
export function onAuthLost(handler) {
  authLostHandler = handler;
}

export function isAbort(err) {
  return err && (err.name === "AbortError" || err.name === "TimeoutError");
}

function retryAfterFrom(resp, details) {
  const header = resp.headers.get("Retry-After");
  if (header) {
    const secs = Number(header);
    if (Number.isFinite(secs)) return Math.max(0, secs * 1000);
    const when = Date.parse(header);
    if (!Number.isNaN(when)) return Math.max(0, when - Date.now());
  }
  if (details && typeof details.retry_after_ms === "number") return details.retry_after_ms;
  return null;
}

/** Build an ApiError from a non-2xx response (reads the JSON error body when there is one). */
export async function errorFrom(resp) {
  let body = null;
  try { body = await resp.json(); } catch { /* not JSON */ }
  const err = (body && body.error) || {};
  const message = typeof err.message === "string" ? err.message
    : typeof err === "string" ? err
    : resp.status >= 500 ? "The server had a problem. Try again." : `Request failed (${resp.status}).`;
  const apiError = new ApiError({
    status: resp.status,
    code: err.code || (resp.status === 401 ? "not_authenticated" : "error"),
    message,
    details: err.details ?? null,
    retryAfterMs: retryAfterFrom(resp, err.details),
  });
  apiError.body = body;
  if (resp.status === 401 && authLostHandler) authLostHandler(apiError);
  return apiError;
}

/** fetch() that turns network failures into NetworkError and keeps aborts as they are. */
export async function rawFetch(path, init = {}) {
  try {
    return await fetch(path, { credentials: "same-origin", ...init });
  } catch (e) {
    if (isAbort(e)) throw e;
    throw new NetworkError(undefined, e);
  }
}

/** JSON request; resolves to the parsed body (null for 204). */
export async function request(method, path, { json, headers = {}, signal } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers }, signal };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["Content-Type"] = "application/json";
  }
  const resp = await rawFetch(path, init);
  if (!resp.ok) throw await errorFrom(resp);
  if (resp.status === 204) return null;
  const type = resp.headers.get("Content-Type") || "";
  return type.includes("json") ? resp.json() : null;
}

export const api = {
  me: () => request("GET", "/api/v1/auth/me"),
  login: (email, password) => request("POST", "/api/v1/auth/login", { json: { email, password } }),
  logout: () => request("POST", "/api/v1/auth/logout"),
  portfolios: () => request("GET", "/api/v1/portfolios"),
  chatConfig: (query = "") => request("GET", `/api/v1/chat/config${query}`),
  conversation: (id) => request("GET", `/api/v1/chat/conversations/${encodeURIComponent(id)}`),
  // Modes, memories and feedback live on the shared records: the same calls serve both paths.
  setMode: (id, mode) => request("PUT", `/api/v1/chat/conversations/${encodeURIComponent(id)}/mode`, { json: { mode } }),
  memories: () => request("GET", "/api/v1/chat/memories?limit=100"),
  deleteMemory: (id) => request("DELETE", `/api/v1/chat/memories/${encodeURIComponent(id)}`),
  clearMemories: () => request("DELETE", "/api/v1/chat/memories"),
  rate: (messageId, rating) => request("POST", `/api/v1/chat/messages/${encodeURIComponent(messageId)}/feedback`, { json: { rating } }),
  unrate: (messageId) => request("DELETE", `/api/v1/chat/messages/${encodeURIComponent(messageId)}/feedback`),
};
