"""Fault scenarios of the simulator, chosen per request.

Selection: the ``X-Sim-Scenario`` header, or a model-name suffix ``model@scenario`` (the
suffix is removed from the reported model name). Grammar: ``name[;times=N]``.

``times=N`` makes the fault apply to the first N requests of one user question (keyed by the
scenario and a hash of the input items up to the latest user message) and then stop, so
"fail the first attempt, succeed on the retry" is testable: with ``rate_limit;times=1`` the
first request for a question answers 429 and its retry succeeds, the tool round that follows
is not failed again.

Scenarios:

===========================  ==============================================================
rate_limit                   429, OpenAI error body, ``Retry-After`` (seconds)
server_error                 500, OpenAI error body
overloaded                   503, OpenAI error body
reset_before_first_byte      the connection is cut before any byte of a response
drop_mid_stream              some text deltas, then the connection is cut (no terminal event)
no_terminal_event            a clean stream whose body ends without ``response.completed``
malformed_event              a ``data:`` line that is not JSON, after some text deltas
response_failed              ``response.failed`` with an error object, before any output
response_incomplete          some text, then ``response.incomplete`` (``max_output_tokens``)
slow_tokens                  a normal answer at a much slower token rate (default 5/s)
tool_error                   the model calls ``get_prices_historical`` with an out-of-range
                             ``lookback_days`` (arguments that fail the schema); the next
                             turn acknowledges the tool's error
unknown_tool                 the model calls a tool it was not given (``get_crystal_ball``);
                             the next turn answers after the tool's error
invalid_json_arguments       the model calls ``get_prices_historical`` with arguments that
                             are not JSON; the next turn answers after the tool's error
unknown_tool_loop            the model calls the unknown tool on every turn, never
                             answering: the run meets the tool-iteration limit
ramble                       the answer ignores ``max_output_tokens`` / ``max_tokens`` and
                             goes on for ~RAMBLE_TOKENS tokens (a small model that rambles)
echo_context                 not a fault: the answer reports the conversation mode and the
                             saved memories found in the request's instructions, so tests
                             can see what context an engine really sent upstream
===========================  ==============================================================

The mid-stream faults (drop_mid_stream, no_terminal_event, malformed_event,
response_incomplete) hit the turn that streams the answer text, so they land after visible
output; a tool-call turn before it streams normally. Non-streaming requests get the closest
equivalent (a cut or truncated JSON body, a failed or incomplete response object).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sigmachat.agent.instructions import parse_memories_note
from sigmachat.offline.analyst import fit_arguments, offered_tools, parse_conversation
from sigmachat.offline.personal import mode_of
from sigmachat.offline.protocol import (
    ResponseBuilder,
    ToolCallPlan,
    Turn,
    Usage,
    error_body,
    input_token_estimate,
    split_tokens,
)
from sigmachat.offline.server import DROP, FaultChoice, Frame, Pacing, ServerResponse

SCENARIOS = (
    "rate_limit",
    "server_error",
    "overloaded",
    "reset_before_first_byte",
    "drop_mid_stream",
    "no_terminal_event",
    "malformed_event",
    "response_failed",
    "response_incomplete",
    "slow_tokens",
    "tool_error",
    "unknown_tool",
    "invalid_json_arguments",
    "unknown_tool_loop",
    "ramble",
    "echo_context",
)
# Tool-call misbehaviour: what the model calls on a turn with no tool results yet.
UNKNOWN_TOOL = "get_crystal_ball"
INVALID_JSON_ARGUMENTS = '{"lookback_days": 30, "portfolio_id": '  # cut off: not JSON
# How long a rambling answer goes on if nothing stops it (a real small model did 3,778).
RAMBLE_TOKENS = 12_000
HEADER = "x-sim-scenario"
MALFORMED_LINE = b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":<not json>\n\n'
# How many text deltas reach the client before a mid-stream fault.
DELTAS_BEFORE_FAULT = 6
INVALID_LOOKBACK_DAYS = 9999


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    times: int | None = None  # None: every request

    @classmethod
    def parse(cls, spec: str) -> Scenario | None:
        """``"rate_limit;times=1"`` -> Scenario; ``""`` or ``"none"`` -> None; unknown -> ValueError."""
        parts = [p.strip() for p in spec.split(";") if p.strip()]
        if not parts or parts[0].lower() in ("none", "off", "ok"):
            return None
        name = parts[0].lower()
        if name not in SCENARIOS:
            raise ValueError(f"Unknown simulator scenario '{parts[0]}'. Known: {', '.join(SCENARIOS)}.")
        times = None
        for option in parts[1:]:
            key, _, value = option.partition("=")
            if key.strip().lower() in ("times", "once"):
                try:
                    times = int(value) if value else 1
                except ValueError as exc:
                    raise ValueError(f"Invalid times value '{value}' in scenario '{spec}'.") from exc
                if times < 0:
                    raise ValueError(f"Invalid times value '{value}' in scenario '{spec}'.")
            else:
                raise ValueError(f"Unknown scenario option '{option}' in '{spec}'.")
        return cls(name, times)


def question_key(body: dict[str, Any]) -> str:
    """A hash of the input items up to and including the latest user message."""
    from sigmachat.offline.protocol import stable_hash

    raw = body.get("input")
    items = [raw] if isinstance(raw, str) else list(raw or [])
    last_user = 0
    for i, item in enumerate(items):
        if isinstance(item, str) or (isinstance(item, dict) and item.get("role") == "user"):
            last_user = i
    return stable_hash(items[: last_user + 1])


class ScenarioInjector:
    """The simulator's :class:`~sigmachat.offline.server.FaultInjector`."""

    def __init__(self, *, slow_tokens_per_s: float = 5.0, retry_after_s: float = 1.0, max_keys: int = 10_000) -> None:
        self.slow_tokens_per_s = slow_tokens_per_s
        self.retry_after_s = retry_after_s
        self._counts: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._max_keys = max_keys
        self._lock = threading.Lock()  # the CLI server is single-threaded; tests may not be

    def choose(self, headers: Mapping[str, str], body: dict[str, Any]) -> FaultChoice:
        model = str(body.get("model") or "")
        spec = ""
        if "@" in model:
            model, _, spec = model.partition("@")
        header = next((v for k, v in headers.items() if k.lower() == HEADER), None)
        if header:
            spec = header  # the header wins over a model suffix
        try:
            scenario = Scenario.parse(spec) if spec else None
        except ValueError as exc:
            return FaultChoice(error=str(exc))
        if scenario is None:
            return FaultChoice(model=model)
        if scenario.times is not None and not self._take(scenario, body):
            return FaultChoice(model=model)
        return FaultChoice(fault=ActiveScenario(scenario.name, self), model=model)

    def _take(self, scenario: Scenario, body: dict[str, Any]) -> bool:
        """Count one use of a limited scenario; False once its budget for this question is spent."""
        key = (scenario.name, question_key(body))
        with self._lock:
            used = self._counts.get(key, 0)
            if used >= (scenario.times or 0):
                return False
            self._counts[key] = used + 1
            self._counts.move_to_end(key)
            while len(self._counts) > self._max_keys:
                self._counts.popitem(last=False)
            return True

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


def _rambling(turn: Turn) -> Turn:
    """The turn's answer, then the same again and again: about RAMBLE_TOKENS tokens."""
    if not turn.text:
        return turn
    per_copy = max(1, len(split_tokens(turn.text)))
    copies = max(2, RAMBLE_TOKENS // per_copy)
    return Turn(calls=turn.calls, text="\n\n".join([turn.text] * copies))


def _error(
    status: int, message: str, etype: str, code: str | None, headers: dict[str, str] | None = None
) -> ServerResponse:
    body = json.dumps(error_body(message, etype=etype, code=code), separators=(",", ":")).encode()
    return ServerResponse(status, {"content-type": "application/json", **(headers or {})}, body)


def _echo_context(request: dict[str, Any]) -> Turn:
    """What the request's instructions told the model about the user, read back as a model would."""
    instructions = str(request.get("instructions") or "")
    memories = parse_memories_note(instructions)
    listed = "; ".join(memories) if memories else "none"
    return Turn(text=f"Mode: {mode_of(instructions)}. Memories: {listed}.")


class ActiveScenario:
    """One request's scenario: the hooks the offline model server calls."""

    def __init__(self, name: str, injector: ScenarioInjector) -> None:
        self.name = name
        self.injector = injector

    # --- before any response ---

    def drop_before_response(self) -> bool:
        return self.name == "reset_before_first_byte"

    def http_error(self) -> ServerResponse | None:
        if self.name == "rate_limit":
            seconds = self.injector.retry_after_s
            retry_after = str(int(seconds)) if float(seconds).is_integer() else str(seconds)
            return _error(
                429,
                f"Rate limit reached for requests (simulated). Please try again in {retry_after}s.",
                "requests",
                "rate_limit_exceeded",
                {
                    "retry-after": retry_after,
                    "retry-after-ms": str(int(seconds * 1000)),
                    "x-ratelimit-remaining-requests": "0",
                },
            )
        if self.name == "server_error":
            return _error(
                500,
                "The server had an error while processing your request (simulated).",
                "server_error",
                "server_error",
            )
        if self.name == "overloaded":
            return _error(
                503,
                "The engine is currently overloaded, please try again later (simulated).",
                "server_error",
                "overloaded",
            )
        return None

    # --- what the model says ---

    def adjust_turn(self, request: dict[str, Any], turn: Turn) -> Turn:
        if self.name == "ramble":
            return _rambling(turn)
        first_turn = not parse_conversation(request).has_tool_results
        if self.name == "unknown_tool_loop" or (self.name == "unknown_tool" and first_turn):
            return Turn(calls=(ToolCallPlan(UNKNOWN_TOOL, {"question": "where will the market close next year?"}),))
        if self.name == "invalid_json_arguments" and first_turn:
            return Turn(calls=(ToolCallPlan("get_prices_historical", raw_arguments=INVALID_JSON_ARGUMENTS),))
        if self.name == "echo_context":
            return _echo_context(request)
        if self.name != "tool_error" or parse_conversation(request).has_tool_results:
            return turn
        tools = offered_tools(request)
        if "get_prices_historical" not in tools:
            return turn
        bad = {"portfolio_id": None, "lookback_days": INVALID_LOOKBACK_DAYS, "include_factor_etfs": False}
        return Turn(calls=(ToolCallPlan("get_prices_historical", fit_arguments(bad, tools["get_prices_historical"])),))

    def pacing(self, pacing: Pacing) -> Pacing:
        if self.name == "slow_tokens":
            return Pacing(pacing.ttfb_ms, self.injector.slow_tokens_per_s)
        return pacing

    # --- the stream ---

    def stream(self, events: Iterator[dict[str, Any]], builder: ResponseBuilder, turn: Turn) -> Iterable[Frame]:
        if self.name == "response_failed":
            return self._failed(events, builder)
        if not turn.text or self.name not in (
            "drop_mid_stream",
            "no_terminal_event",
            "malformed_event",
            "response_incomplete",
        ):
            return events
        if self.name == "no_terminal_event":
            return (e for e in events if e.get("type") != "response.completed")
        return self._cut_after_deltas(events, builder, turn)

    def _failed(self, events: Iterator[dict[str, Any]], builder: ResponseBuilder) -> Iterator[Frame]:
        # created and in_progress only: pulling more would consume sequence numbers.
        for _ in range(2):
            event = next(events, None)
            if event is not None:
                yield event
        yield builder.failed(
            {"code": "server_error", "message": "The model failed to generate a response (simulated)."}
        )

    def _cut_after_deltas(
        self, events: Iterator[dict[str, Any]], builder: ResponseBuilder, turn: Turn
    ) -> Iterator[Frame]:
        total = len(split_tokens(turn.text))
        limit = max(1, min(DELTAS_BEFORE_FAULT, total // 2))
        sent = 0
        partial = ""
        index = len(turn.calls)
        for event in events:
            yield event
            if event["type"] != "response.output_text.delta":
                continue
            sent += 1
            partial += event["delta"]
            if sent < limit:
                continue
            if self.name == "drop_mid_stream":
                yield DROP
                return
            if self.name == "malformed_event":
                yield MALFORMED_LINE
                # A real server would go on; the client must already have failed on the bad line.
                yield from events
                return
            if self.name == "response_incomplete":
                yield from builder.message_end_events(index, partial, status="incomplete")
                output = [builder.function_call_item(i, c) for i, c in enumerate(turn.calls)]
                output.append(builder.message_item(index, partial, status="incomplete"))
                usage = Usage(input_tokens=input_token_estimate(builder.request), output_tokens=sent)
                yield builder.incomplete("max_output_tokens", output, usage)
                return

    # --- non-streaming ---

    def json_body(self, response: dict[str, Any], builder: ResponseBuilder, turn: Turn) -> Iterable[Frame] | None:
        body = json.dumps(response, separators=(",", ":"), ensure_ascii=False).encode()
        if self.name == "drop_mid_stream":
            return [body[: len(body) // 2], DROP]
        if self.name == "malformed_event":
            return [body[: len(body) // 2]]
        if self.name == "response_failed":
            failed = builder.response(
                "failed",
                error={"code": "server_error", "message": "The model failed to generate a response (simulated)."},
            )
            return [json.dumps(failed, separators=(",", ":")).encode()]
        if self.name == "response_incomplete" and turn.text:
            tokens = split_tokens(turn.text)
            partial = "".join(tokens[: max(1, len(tokens) // 2)])
            obj = builder.response(
                "incomplete",
                output=[builder.message_item(len(turn.calls), partial, status="incomplete")],
                usage=Usage(input_tokens=input_token_estimate(builder.request), output_tokens=max(1, len(tokens) // 2)),
                incomplete_reason="max_output_tokens",
            )
            return [json.dumps(obj, separators=(",", ":")).encode()]
        return None
