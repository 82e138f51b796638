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

// Titles for tool steps, the same words the ChatKit path puts on its workflow tasks.
const TOOL_TITLES = {
  list_user_portfolios: "Finding your portfolios",
  get_benchmark_comparison: "Comparing with the S&P 500",
  remember: "Saving a memory",
  get_portfolio_complete: "Loading the portfolio",
  get_portfolio_overview: "Loading the portfolio overview",
  get_positions: "Looking up positions",
  get_positions_details: "Looking up positions",
  get_holdings: "Looking up holdings",
  get_largest_positions: "Ranking positions by size",
  get_top_positions: "Ranking positions by size",
  get_exposures: "Measuring exposures",
  get_portfolio_exposures: "Measuring exposures",
  get_sector_exposure: "Breaking down sectors",
  get_sector_exposures: "Breaking down sectors",
  get_risk_metrics: "Computing risk metrics",
  get_portfolio_risk: "Computing risk metrics",
  get_volatility: "Measuring volatility",
  get_factor_exposures: "Estimating factor exposures",
  get_factor_betas: "Estimating factor exposures",
  run_stress_test: "Running stress scenarios",
  get_stress_test: "Running stress scenarios",
  get_stress_tests: "Running stress scenarios",
  get_concentration: "Checking concentration",
  get_concentration_metrics: "Checking concentration",
  get_correlations: "Computing correlations",
  get_top_movers: "Finding the biggest movers",
  get_movers: "Finding the biggest movers",
  get_prices_historical: "Fetching price history",
  get_price_history: "Fetching price history",
  get_quotes: "Fetching quotes",
  get_current_quotes: "Fetching quotes",
  get_quote: "Fetching a quote",
  get_company_profile: "Reading the company profile",
  get_performance: "Measuring performance",
  get_portfolio_performance: "Measuring performance",
  get_portfolio_data_quality: "Checking data quality",
};

export function toolTitle(name) {
  if (!name) return "Running an analysis step";
  if (TOOL_TITLES[name]) return TOOL_TITLES[name];
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

// Status of an assistant message after a failure, from the failure code.
export function statusForFailure(code) {
  if (code === "cancelled") return "cancelled";
  if (code === "response_incomplete") return "incomplete";
  if (code === "interrupted") return "interrupted";
  return "failed";
}

const ERROR_TYPE_BY_CODE = {
  rate_limited: "RATE_LIMITED",
  network_error: "NETWORK_ERROR",
  timeout: "NETWORK_ERROR",
  stream_incomplete: "NETWORK_ERROR",
  auth_expired: "AUTH_EXPIRED",
  not_authenticated: "AUTH_EXPIRED",
  response_incomplete: "FATAL_ERROR",
  max_tool_iterations: "FATAL_ERROR",
  upstream_auth: "FATAL_ERROR",
  bad_request: "FATAL_ERROR",
  cancelled: "FATAL_ERROR",
};

export function errorTypeFor(code) {
  return ERROR_TYPE_BY_CODE[code] || "SERVER_ERROR";
}

export function newAssistant(fields = {}) {
  return {
    id: null, role: "assistant", content: "", status: "streaming", tools: [], offline: false,
    model: null, runId: null, error: null, notice: null, createdAt: new Date().toISOString(), ...fields,
  };
}
