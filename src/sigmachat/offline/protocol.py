"""The Responses API wire format, as the offline model and the simulator speak it.

Builds the streaming events and the response object as plain dicts with the exact shapes of
the real OpenAI captures in ``tests/fixtures/openai-responses/`` (same event types, same keys,
same order of events). Everything is a pure function of its arguments: ids are derived from a
hash of the request, so the same request always produces byte-identical output.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

# Metadata that labels every offline answer (the UI shows "offline model" from it).
OFFLINE_METADATA = {"sigmachat_offline": "true"}

# GPT-style pre-tokenisation: a word with its leading space, a number, a run of punctuation,
# or whitespace. Deltas of this size look like the captures (" couldn't", " coat", "!").
_TOKEN_RE = re.compile(r" ?[A-Za-z]+(?:'[a-z]+)?| ?\d+| ?[^\sA-Za-z\d]+|\n+|\s+")


def split_tokens(text: str) -> list[str]:
    """Split text into token-sized deltas; ``"".join(split_tokens(t)) == t`` always holds."""
    if not text:
        return []
    parts = _TOKEN_RE.findall(text)
    joined = "".join(parts)
    if joined != text:  # defensive: never lose a character, whatever the regex misses
        return [text[i : i + 4] for i in range(0, len(text), 4)]
    return parts


def estimate_tokens(text: str) -> int:
    """A deterministic token estimate: about four characters per token (no tokenizer offline).

    Real counts need the model's tokenizer; for usage reporting and pacing the ~chars/4 rule
    OpenAI documents is close enough and keeps the offline model dependency-free.
    """
    return max(1, math.ceil(len(text) / 4)) if text else 0


def stable_hash(value: Any) -> str:
    """Hex digest of a JSON-serialisable value, independent of dict key order."""
    blob = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def encode_sse(event: dict[str, Any]) -> bytes:
    """One server-sent event frame, the way OpenAI frames them (``event:`` then ``data:``)."""
    data = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
    return f"event: {event['type']}\ndata: {data}\n\n".encode()


@dataclass(frozen=True, slots=True)
class ToolCallPlan:
    """A function call the model decided to make: tool name and JSON arguments."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    raw_arguments: str | None = None  # sent verbatim instead (the simulator's broken JSON)

    @property
    def arguments_json(self) -> str:
        if self.raw_arguments is not None:
            return self.raw_arguments
        return json.dumps(self.arguments, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Turn:
    """What the model says in one response: function calls, or a text answer (or both)."""

    calls: tuple[ToolCallPlan, ...] = ()
    text: str = ""


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int
    output_tokens: int
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "input_tokens_details": {"cached_tokens": self.cached_tokens},
            "output_tokens": self.output_tokens,
            "output_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
            "total_tokens": self.input_tokens + self.output_tokens,
        }


def _echo_tools(tools: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for tool in tools if isinstance(tools, list) else []:
        if not isinstance(tool, dict):
            continue
        if tool.get("type") == "function":
            out.append(
                {
                    "type": "function",
                    "description": tool.get("description"),
                    "name": tool.get("name"),
                    "parameters": tool.get("parameters"),
                    "strict": tool.get("strict", True),
                }
            )
        else:
            out.append(dict(tool))
    return out


class ResponseBuilder:
    """Builds one response's events with gap-free ``sequence_number`` values from 0.

    ``request`` is the parsed request body: the fields OpenAI echoes back (instructions,
    tools, temperature, ...) are echoed the same way.
    """

    def __init__(
        self,
        request: dict[str, Any],
        *,
        model: str,
        created_at: int,
        seed: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        self.request = request
        self.model = model
        self.created_at = created_at
        self._seed = seed or stable_hash(request)
        self.metadata = {**(request.get("metadata") or {}), **(metadata or {})}
        self.id = self.make_id("resp", "response")
        self._seq = 0

    def make_id(self, prefix: str, *parts: Any) -> str:
        digest = hashlib.sha256("|".join([self._seed, prefix, *map(str, parts)]).encode()).hexdigest()
        if prefix == "call":
            return f"call_{digest[:24]}"
        return f"{prefix}_{digest[:48]}"

    def _event(self, etype: str, **fields: Any) -> dict[str, Any]:
        event = {"type": etype, "sequence_number": self._seq, **fields}
        self._seq += 1
        return event

    # --- the response object ---

    def response(
        self,
        status: str,
        *,
        output: list[dict[str, Any]] | None = None,
        usage: Usage | None = None,
        error: dict[str, Any] | None = None,
        incomplete_reason: str | None = None,
    ) -> dict[str, Any]:
        req = self.request
        text_cfg = req.get("text") if isinstance(req.get("text"), dict) else {"format": {"type": "text"}}
        reasoning_cfg = req.get("reasoning")
        reasoning = reasoning_cfg if isinstance(reasoning_cfg, dict) else {}
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": bool(req.get("background") or False),
            "error": error,
            "incomplete_details": {"reason": incomplete_reason} if incomplete_reason else None,
            "instructions": req.get("instructions"),
            "max_output_tokens": req.get("max_output_tokens"),
            "model": self.model,
            "output": output or [],
            "parallel_tool_calls": req.get("parallel_tool_calls", True),
            "previous_response_id": req.get("previous_response_id"),
            "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
            "service_tier": "default",
            "store": req.get("store", True),
            "temperature": req.get("temperature", 1.0),
            "text": text_cfg,
            "tool_choice": req.get("tool_choice", "auto"),
            "tools": _echo_tools(req.get("tools")),
            "top_p": req.get("top_p", 1.0),
            "truncation": req.get("truncation", "disabled"),
            "usage": usage.to_dict() if usage else None,
            "user": req.get("user"),
            "metadata": self.metadata,
        }

    # --- items ---

    def function_call_item(self, index: int, call: ToolCallPlan, *, status: str = "completed") -> dict[str, Any]:
        return {
            "id": self.make_id("fc", index, call.name),
            "type": "function_call",
            "status": status,
            "arguments": call.arguments_json if status == "completed" else "",
            "call_id": self.make_id("call", index, call.name),
            "name": call.name,
        }

    def message_item(self, index: int, text: str | None, *, status: str = "completed") -> dict[str, Any]:
        content = [] if text is None else [{"type": "output_text", "annotations": [], "text": text}]
        return {
            "id": self.make_id("msg", index),
            "type": "message",
            "status": status,
            "content": content,
            "role": "assistant",
        }

    # --- events ---

    def created(self) -> dict[str, Any]:
        return self._event("response.created", response=self.response("in_progress"))

    def in_progress(self) -> dict[str, Any]:
        return self._event("response.in_progress", response=self.response("in_progress"))

    def function_call_events(self, index: int, call: ToolCallPlan) -> Iterator[dict[str, Any]]:
        """added, one delta per token of the arguments, arguments.done, item done."""
        item = self.function_call_item(index, call)
        yield self._event(
            "response.output_item.added",
            output_index=index,
            item=self.function_call_item(index, call, status="in_progress"),
        )
        for delta in split_tokens(call.arguments_json):
            yield self._event(
                "response.function_call_arguments.delta", item_id=item["id"], output_index=index, delta=delta
            )
        yield self._event(
            "response.function_call_arguments.done",
            item_id=item["id"],
            output_index=index,
            arguments=call.arguments_json,
        )
        yield self._event("response.output_item.done", output_index=index, item=item)

    def message_start_events(self, index: int) -> Iterator[dict[str, Any]]:
        item_id = self.make_id("msg", index)
        yield self._event(
            "response.output_item.added", output_index=index, item=self.message_item(index, None, status="in_progress")
        )
        yield self._event(
            "response.content_part.added",
            item_id=item_id,
            output_index=index,
            content_index=0,
            part={"type": "output_text", "annotations": [], "text": ""},
        )

    def text_delta(self, index: int, delta: str) -> dict[str, Any]:
        return self._event(
            "response.output_text.delta",
            item_id=self.make_id("msg", index),
            output_index=index,
            content_index=0,
            delta=delta,
        )

    def message_end_events(self, index: int, text: str, *, status: str = "completed") -> Iterator[dict[str, Any]]:
        item_id = self.make_id("msg", index)
        yield self._event("response.output_text.done", item_id=item_id, output_index=index, content_index=0, text=text)
        yield self._event(
            "response.content_part.done",
            item_id=item_id,
            output_index=index,
            content_index=0,
            part={"type": "output_text", "annotations": [], "text": text},
        )
        yield self._event(
            "response.output_item.done", output_index=index, item=self.message_item(index, text, status=status)
        )

    def completed(self, output: list[dict[str, Any]], usage: Usage) -> dict[str, Any]:
        return self._event("response.completed", response=self.response("completed", output=output, usage=usage))

    def failed(
        self, error: dict[str, Any], output: list[dict[str, Any]] | None = None, usage: Usage | None = None
    ) -> dict[str, Any]:
        return self._event("response.failed", response=self.response("failed", output=output, usage=usage, error=error))

    def incomplete(self, reason: str, output: list[dict[str, Any]], usage: Usage) -> dict[str, Any]:
        return self._event(
            "response.incomplete",
            response=self.response("incomplete", output=output, usage=usage, incomplete_reason=reason),
        )


def input_token_estimate(request: dict[str, Any]) -> int:
    """What the model 'read': instructions, input items and tool schemas (chars/4, see above)."""
    parts = [
        request.get("instructions") or "",
        json.dumps(request.get("input") or "", ensure_ascii=False),
        json.dumps(request.get("tools") or [], ensure_ascii=False),
    ]
    return estimate_tokens("".join(parts))


def turn_output(builder: ResponseBuilder, turn: Turn) -> list[dict[str, Any]]:
    """The ``output`` list of the finished response for a turn (function calls, then text)."""
    output = [builder.function_call_item(i, call) for i, call in enumerate(turn.calls)]
    if turn.text:
        output.append(builder.message_item(len(turn.calls), turn.text))
    return output


def turn_usage(request: dict[str, Any], turn: Turn) -> Usage:
    out_tokens = sum(len(split_tokens(c.arguments_json)) + 1 for c in turn.calls) + len(split_tokens(turn.text))
    return Usage(input_tokens=input_token_estimate(request), output_tokens=out_tokens)


def turn_events(builder: ResponseBuilder, turn: Turn, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The full event stream of one successful turn, in the order OpenAI sends it."""
    yield builder.created()
    yield builder.in_progress()
    for i, call in enumerate(turn.calls):
        yield from builder.function_call_events(i, call)
    if turn.text:
        index = len(turn.calls)
        yield from builder.message_start_events(index)
        for delta in split_tokens(turn.text):
            yield builder.text_delta(index, delta)
        yield from builder.message_end_events(index, turn.text)
    yield builder.completed(turn_output(builder, turn), turn_usage(request, turn))


def response_object(builder: ResponseBuilder, turn: Turn, request: dict[str, Any]) -> dict[str, Any]:
    """The non-streaming answer: the completed response object, with ``output_text`` omitted
    (the SDK computes ``response.output_text`` from ``output`` itself)."""
    return builder.response("completed", output=turn_output(builder, turn), usage=turn_usage(request, turn))


def error_body(
    message: str, *, etype: str = "invalid_request_error", param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """An OpenAI-format HTTP error body."""
    return {"error": {"message": message, "type": etype, "param": param, "code": code}}
