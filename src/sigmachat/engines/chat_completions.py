"""The Chat Completions side of the model client: requests built from the Responses engine's
input items, and a tolerant reader of ``chat.completion.chunk`` streams that produces the same
outputs as :class:`~sigmachat.engines.responses_stream.ResponsesStreamReader` (text chunks,
finished function calls, one turn end), so the engine above does not know which API it spoke.

For servers that serve ``/v1/chat/completions`` but not ``/v1/responses`` (many self-hosted
servers and gateways). What does not cross over: reasoning items (Chat Completions has no
place for them; they are dropped from the request) and ``previous_response_id``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sigmachat.agent.events import Usage
from sigmachat.engines.responses_stream import (
    FunctionCall,
    TextChunk,
    TurnEnd,
    error_fields,
)

# finish_reason -> the Responses API's incomplete_details.reason (one vocabulary downstream).
INCOMPLETE_FINISH_REASONS = {
    "length": "max_output_tokens",
    "content_filter": "content_filter",
}


def max_tokens_param(is_openai: bool) -> str:
    """OpenAI wants ``max_completion_tokens`` (``max_tokens`` is refused by its reasoning
    models); Ollama, vLLM and llama.cpp document ``max_tokens``."""
    return "max_completion_tokens" if is_openai else "max_tokens"


def chat_messages(instructions: str | None, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Responses input items as Chat Completions messages.

    Consecutive ``function_call`` items become one assistant message with ``tool_calls`` (the
    shape every server expects before the ``tool`` messages that answer them).
    """
    messages: list[dict[str, Any]] = []
    if instructions:
        messages.append({"role": "system", "content": instructions})
    for item in items:
        itype = item.get("type")
        if itype == "function_call":
            call = {
                "id": item["call_id"],
                "type": "function",
                "function": {
                    "name": item["name"],
                    "arguments": item.get("arguments") or "{}",
                },
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif itype == "function_call_output":
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": item["call_id"],
                    "content": item.get("output") or "",
                }
            )
        elif itype == "reasoning":
            continue  # no place for it in Chat Completions
        elif item.get("role") in ("user", "assistant", "system", "developer"):
            messages.append({"role": item["role"], "content": item.get("content") or ""})
    return messages


def chat_tools(tools: list[dict[str, Any]], *, strict: bool) -> list[dict[str, Any]]:
    """Responses function tools as Chat Completions tools (``strict`` only where it is known)."""
    out = []
    for tool in tools:
        function: dict[str, Any] = {
            "name": tool["name"],
            "description": tool.get("description") or "",
            "parameters": tool.get("parameters") or {"type": "object", "properties": {}},
        }
        if strict and tool.get("strict") is not None:
            function["strict"] = tool["strict"]
        out.append({"type": "function", "function": function})
    return out


def chat_request(
    *,
    model: str,
    instructions: str | None,
    items: list[dict[str, Any]],
    tools: list[dict[str, Any]],
    max_output_tokens: int,
    is_openai: bool,
    extra_headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Keyword arguments of ``client.chat.completions.create`` for one streamed model call."""
    kwargs: dict[str, Any] = {
        "model": model,
        "messages": chat_messages(instructions, items),
        "stream": True,
        # Without it most servers send no usage at all on a stream.
        "stream_options": {"include_usage": True},
        max_tokens_param(is_openai): max_output_tokens,
    }
    if tools:
        kwargs["tools"] = chat_tools(tools, strict=is_openai)
        kwargs["parallel_tool_calls"] = True
    if extra_headers:
        kwargs["extra_headers"] = extra_headers
    return kwargs


@dataclass
class ChatCompletionsStreamReader:
    """Feed chunk dicts in order; get back text chunks as they come, and at :meth:`finish` the
    function calls and the turn end.

    A turn ends when the stream ends: ``finish_reason`` arrives before the usage chunk, so it
    is remembered, not acted on. A stream that ends without any ``finish_reason`` has no
    terminal event (``finish`` returns nothing; the engine calls that stream_incomplete).
    Tolerant like the Responses reader: no ``id``, ``index`` or usage is required.
    """

    _calls: dict[int, dict[str, Any]] = field(default_factory=dict)  # tool_calls index -> partial call
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    response_id: str | None = None
    model: str | None = None
    text: str = ""

    def feed(self, chunk: dict[str, Any]) -> list[TextChunk | FunctionCall | TurnEnd]:
        if chunk.get("error"):
            code, message = error_fields(chunk)
            usage = self.usage
            return [
                TurnEnd(
                    "failed",
                    usage,
                    self.response_id,
                    self.model,
                    code or "error",
                    message or "stream error",
                )
            ]
        self.response_id = chunk.get("id") or self.response_id
        self.model = chunk.get("model") or self.model
        if chunk.get("usage"):
            self.usage = _usage(chunk["usage"])
        out: list[TextChunk | FunctionCall | TurnEnd] = []
        for choice in chunk.get("choices") or []:
            if (choice.get("index") or 0) != 0:
                continue  # we ask for one choice; ignore any other
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if content:
                self.text += content
                out.append(TextChunk(content))
            for tc in delta.get("tool_calls") or []:
                index = tc.get("index")
                index = len(self._calls) if index is None else int(index)
                call = self._calls.setdefault(index, {"id": "", "name": "", "arguments": ""})
                function = tc.get("function") or {}
                call["id"] = tc.get("id") or call["id"]
                call["name"] = function.get("name") or call["name"]
                call["arguments"] += function.get("arguments") or ""
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])
        return out

    def finish(self) -> list[TextChunk | FunctionCall | TurnEnd]:
        """At the end of the stream: the function calls, then the turn end (nothing when the
        stream never said it finished)."""
        if self.finish_reason is None:
            return []
        out: list[TextChunk | FunctionCall | TurnEnd] = []
        for index in sorted(self._calls):
            call = self._calls[index]
            call_id = call["id"] or f"call_{index}"
            out.append(
                FunctionCall(
                    call_id=call_id,
                    name=call["name"],
                    arguments=call["arguments"] or "{}",
                    item_id=call_id,
                )
            )
        reason = INCOMPLETE_FINISH_REASONS.get(self.finish_reason)
        status = "incomplete" if reason else "completed"
        out.append(
            TurnEnd(
                status,
                self.usage,
                self.response_id,
                self.model,
                incomplete_reason=reason,
            )
        )
        return out


def _usage(raw: dict[str, Any]) -> Usage:
    return Usage(
        input_tokens=int(raw.get("prompt_tokens") or 0),
        output_tokens=int(raw.get("completion_tokens") or 0),
        cached_tokens=int((raw.get("prompt_tokens_details") or {}).get("cached_tokens") or 0),
        reasoning_tokens=int((raw.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0),
    )
