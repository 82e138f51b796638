"""The Chat Completions wire format over the offline model's Responses events.

The offline model (and so the simulator, with every fault scenario) answers
``POST /v1/chat/completions`` by translating: the request's messages become a Responses input,
the analyst decides the turn as usual, and the (possibly faulted) Responses event stream is
re-encoded as ``chat.completion.chunk`` frames, the way OpenAI streams them (``data:`` lines
only, a ``finish_reason`` chunk, a usage chunk with empty ``choices``, then ``data: [DONE]``).
Faults carry over: a drop stays a drop, a malformed line stays malformed, no terminal event
means no ``finish_reason`` and no ``[DONE]``, ``response.failed`` becomes an error payload
(nested ``{"error": {...}}``), ``response.incomplete`` becomes ``finish_reason: "length"``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from sigmachat.offline.protocol import ResponseBuilder

DONE = b"data: [DONE]\n\n"
MALFORMED_CHUNK = b'data: {"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":<not json>\n\n'


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text") or "" for p in content if isinstance(p, dict))
    return ""


def responses_body(chat: dict[str, Any]) -> dict[str, Any]:
    """A Chat Completions request body as the equivalent Responses request body."""
    instructions: list[str] = []
    items: list[dict[str, Any]] = []
    for message in chat.get("messages") or []:
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        if role in ("system", "developer"):
            instructions.append(_text(message.get("content")))
        elif role == "user":
            items.append({"role": "user", "content": _text(message.get("content"))})
        elif role == "assistant":
            if _text(message.get("content")):
                items.append({"role": "assistant", "content": _text(message.get("content"))})
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                items.append(
                    {
                        "type": "function_call",
                        "call_id": call.get("id") or "",
                        "name": function.get("name") or "",
                        "arguments": function.get("arguments") or "",
                    }
                )
        elif role == "tool":
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": message.get("tool_call_id") or "",
                    "output": _text(message.get("content")),
                }
            )
    tools = []
    for tool in chat.get("tools") or []:
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and function.get("name"):
            tools.append(
                {
                    "type": "function",
                    "name": function["name"],
                    "description": function.get("description"),
                    "parameters": function.get("parameters") or {},
                    "strict": function.get("strict", False),
                }
            )
    body: dict[str, Any] = {
        "model": chat.get("model"),
        "input": items,
        "tools": tools,
        "stream": bool(chat.get("stream")),
    }
    if instructions:
        body["instructions"] = "\n\n".join(instructions)
    limit = chat.get("max_completion_tokens") or chat.get("max_tokens")
    if limit is not None:
        body["max_output_tokens"] = limit
    return body


def validate_chat(body: dict[str, Any]) -> tuple[str, str] | None:
    """(param, message) of the first problem OpenAI would reject with 400, or None."""
    if not isinstance(body.get("model"), str) or not body["model"].strip():
        return "model", "Missing required parameter: 'model'."
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages", "Missing required parameter: 'messages'."
    return None


class ChunkEncoder:
    """Re-encodes one response's Responses frames as Chat Completions stream frames."""

    def __init__(self, builder: ResponseBuilder, *, include_usage: bool) -> None:
        self.builder = builder
        self.include_usage = include_usage
        self.id = "chatcmpl-" + builder.id[len("resp_") : len("resp_") + 29]
        self._tool_index: dict[str, int] = {}  # function_call item id -> tool_calls index

    def chunk(
        self,
        delta: dict[str, Any] | None,
        finish_reason: str | None = None,
        usage: Any = None,
    ) -> dict[str, Any]:
        choices = (
            []
            if delta is None
            else [
                {
                    "index": 0,
                    "delta": delta,
                    "logprobs": None,
                    "finish_reason": finish_reason,
                }
            ]
        )
        out = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.builder.created_at,
            "model": self.builder.model,
            "system_fingerprint": None,
            "choices": choices,
        }
        if usage is not None:
            out["usage"] = usage
        return out

    def frames(self, events: Iterable[Any]) -> Iterator[Any]:
        """Chunk dicts, raw bytes (passed through, or [DONE]) and the DROP marker."""
        yield self.chunk({"role": "assistant", "content": ""})
        for event in events:
            if not isinstance(event, dict):
                yield (MALFORMED_CHUNK if isinstance(event, bytes) else event)  # malformed bytes, or DROP
                continue
            etype = event.get("type")
            if etype == "response.output_item.added" and (event.get("item") or {}).get("type") == "function_call":
                item = event["item"]
                index = self._tool_index.setdefault(item["id"], len(self._tool_index))
                call = {
                    "index": index,
                    "id": item["call_id"],
                    "type": "function",
                    "function": {"name": item["name"], "arguments": ""},
                }
                yield self.chunk({"tool_calls": [call]})
            elif etype == "response.function_call_arguments.delta":
                index = self._tool_index.get(event.get("item_id") or "", 0)
                yield self.chunk({"tool_calls": [{"index": index, "function": {"arguments": event["delta"]}}]})
            elif etype == "response.output_text.delta":
                yield self.chunk({"content": event["delta"]})
            elif etype in ("response.completed", "response.incomplete"):
                response = event["response"]
                if etype == "response.incomplete":
                    reason = "length"
                else:
                    reason = "tool_calls" if self._tool_index else "stop"
                yield self.chunk({}, reason)
                if self.include_usage and response.get("usage"):
                    yield self.chunk(None, usage=chat_usage(response["usage"]))
                yield DONE
                return
            elif etype == "response.failed":
                error = (event.get("response") or {}).get("error") or {}
                yield {
                    "error": {
                        "message": error.get("message"),
                        "type": "server_error",
                        "param": None,
                        "code": error.get("code"),
                    }
                }
                return


def chat_usage(usage: dict[str, Any]) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.get("input_tokens", 0),
        "completion_tokens": usage.get("output_tokens", 0),
        "total_tokens": usage.get("total_tokens", 0),
        "prompt_tokens_details": {"cached_tokens": (usage.get("input_tokens_details") or {}).get("cached_tokens", 0)},
        "completion_tokens_details": {
            "reasoning_tokens": (usage.get("output_tokens_details") or {}).get("reasoning_tokens", 0)
        },
    }


def encode_chunk(chunk: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(chunk, separators=(',', ':'), ensure_ascii=False)}\n\n".encode()


def is_token_chunk(chunk: dict[str, Any]) -> bool:
    """A chunk carrying one generated token (text or tool arguments): the ones paced."""
    for choice in chunk.get("choices") or []:
        delta = choice.get("delta") or {}
        if delta.get("content") or any(
            (tc.get("function") or {}).get("arguments") for tc in delta.get("tool_calls") or []
        ):
            return True
    return False


def completion_object(response: dict[str, Any], builder: ResponseBuilder) -> dict[str, Any]:
    """A non-streaming ``chat.completion`` from the finished Responses object."""
    content = ""
    calls = []
    for item in response.get("output") or []:
        if item.get("type") == "message":
            content += "".join(p.get("text") or "" for p in item.get("content") or [])
        elif item.get("type") == "function_call":
            calls.append(
                {
                    "id": item["call_id"],
                    "type": "function",
                    "function": {"name": item["name"], "arguments": item["arguments"]},
                }
            )
    message: dict[str, Any] = {
        "role": "assistant",
        "content": content or None,
        "refusal": None,
    }
    if calls:
        message["tool_calls"] = calls
    status = response.get("status")
    finish = "length" if status == "incomplete" else ("tool_calls" if calls else "stop")
    return {
        "id": "chatcmpl-" + builder.id[len("resp_") : len("resp_") + 29],
        "object": "chat.completion",
        "created": builder.created_at,
        "model": builder.model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": chat_usage(response.get("usage") or {}),
    }
