"""Tolerant reader of a Responses API event stream.

Keys only on each event's ``type`` and ``item_id``: compatible servers (Ollama, vLLM,
llama.cpp) omit ``sequence_number``, ``output_index`` and ``logprobs``, so nothing here
requires them. The reader never decides success on its own: only a terminal event
(``response.completed`` / ``failed`` / ``incomplete``) ends a turn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sigmachat.agent.events import Usage


@dataclass(slots=True)
class FunctionCall:
    call_id: str
    name: str
    arguments: str
    item_id: str | None = None


@dataclass(slots=True)
class TextChunk:
    delta: str


@dataclass(slots=True)
class TurnEnd:
    """A terminal event: status completed | failed | incomplete."""

    status: str
    usage: Usage
    response_id: str | None
    model: str | None
    error_code: str | None = None
    error_message: str | None = None
    incomplete_reason: str | None = None


# What a reasoning output item keeps when it goes back as input (``status`` is output-only).
REASONING_INPUT_KEYS = ("type", "id", "summary", "encrypted_content", "content")


def error_fields(event: dict[str, Any]) -> tuple[str | None, str | None]:
    """The upstream's (code, message) of an error event or error object, in either shape:
    flat ``{"type": "error", "code", "message"}`` (the Responses API's documented event) or
    nested ``{"type": "error", "error": {"code", "message"}}`` (what some servers and
    gateways send, and the shape of an error chunk on Chat Completions)."""
    nested = event.get("error")
    nested = nested if isinstance(nested, dict) else {}
    code = event.get("code") or nested.get("code") or nested.get("type")
    message = event.get("message") or nested.get("message")
    return (str(code) if code else None), (str(message) if message else None)


@dataclass
class ResponsesStreamReader:
    """Feed event dicts in order; get back text chunks, finished function calls and the end."""

    _calls: dict[str, dict[str, Any]] = field(default_factory=dict)  # item_id -> partial call
    _emitted_calls: set[str] = field(default_factory=set)  # call_ids already handed out
    _text_items_with_deltas: set[str] = field(default_factory=set)
    # Reasoning items of this turn, as input items to send back with the tool outputs (a
    # stateless reasoning model keeps its chain of thought only through them).
    reasoning_items: list[dict[str, Any]] = field(default_factory=list)
    text: str = ""
    response_id: str | None = None
    model: str | None = None

    def feed(self, event: dict[str, Any]) -> list[TextChunk | FunctionCall | TurnEnd]:
        etype = event.get("type") or ""
        out: list[TextChunk | FunctionCall | TurnEnd] = []
        if etype in ("response.created", "response.in_progress"):
            resp = event.get("response") or {}
            self.response_id = resp.get("id") or self.response_id
            self.model = resp.get("model") or self.model
        elif etype == "response.output_text.delta":
            delta = event.get("delta") or ""
            if delta:
                self._text_items_with_deltas.add(event.get("item_id") or "")
                self.text += delta
                out.append(TextChunk(delta))
        elif etype == "response.output_text.done":
            # Servers that never stream deltas still send the whole text here.
            item_id = event.get("item_id") or ""
            text = event.get("text") or ""
            if item_id not in self._text_items_with_deltas and text:
                self._text_items_with_deltas.add(item_id)
                self.text += text
                out.append(TextChunk(text))
        elif etype == "response.output_item.added":
            item = event.get("item") or {}
            if item.get("type") == "function_call":
                item_id = item.get("id") or item.get("call_id") or f"item{len(self._calls)}"
                self._calls[item_id] = {
                    "call_id": item.get("call_id") or item_id,
                    "name": item.get("name") or "",
                    "arguments": item.get("arguments") or "",
                }
        elif etype == "response.function_call_arguments.delta":
            call = self._calls.get(event.get("item_id") or "")
            if call is not None:
                call["arguments"] += event.get("delta") or ""
        elif etype == "response.function_call_arguments.done":
            call = self._calls.get(event.get("item_id") or "")
            if call is not None and event.get("arguments") is not None:
                call["arguments"] = event["arguments"]
        elif etype == "response.output_item.done":
            item = event.get("item") or {}
            if item.get("type") == "function_call":
                out.extend(self._finish_call(item))
            elif item.get("type") == "message":
                out.extend(self._message_text_fallback(item))
            elif item.get("type") == "reasoning":
                self._keep_reasoning(item)
        elif etype in ("response.completed", "response.failed", "response.incomplete"):
            resp = event.get("response") or {}
            # Calls only present in the final output (no item events) still count.
            for item in resp.get("output") or []:
                if item.get("type") == "function_call":
                    out.extend(self._finish_call(item))
                elif item.get("type") == "message":
                    out.extend(self._message_text_fallback(item))
                elif item.get("type") == "reasoning":
                    self._keep_reasoning(item)
            out.append(self._turn_end(etype.split(".", 1)[1], resp))
        elif etype == "error":
            code, message = error_fields(event)
            out.append(
                TurnEnd(
                    status="failed",
                    usage=Usage(),
                    response_id=self.response_id,
                    model=self.model,
                    error_code=code or "error",
                    error_message=message or "stream error",
                )
            )
        return out

    def finish(self) -> list[TextChunk | FunctionCall | TurnEnd]:
        """At the end of the body: nothing more (a Responses turn ends only on a terminal event)."""
        return []

    def _keep_reasoning(self, item: dict[str, Any]) -> None:
        item_id = item.get("id")
        if item_id and any(r.get("id") == item_id for r in self.reasoning_items):
            return
        # As an input item, with the encrypted content when the upstream sent it.
        kept = {k: item[k] for k in REASONING_INPUT_KEYS if item.get(k) is not None}
        kept.setdefault("summary", [])
        self.reasoning_items.append(kept)

    def _finish_call(self, item: dict[str, Any]) -> list[FunctionCall]:
        item_id = item.get("id") or item.get("call_id") or ""
        partial = self._calls.get(item_id, {})
        call_id = item.get("call_id") or partial.get("call_id") or item_id
        if not call_id or call_id in self._emitted_calls:
            return []
        self._emitted_calls.add(call_id)
        arguments = item.get("arguments")
        if arguments is None or (arguments == "" and partial.get("arguments")):
            arguments = partial.get("arguments", "")
        return [
            FunctionCall(
                call_id=call_id,
                name=item.get("name") or partial.get("name", ""),
                arguments=arguments or "{}",
                item_id=item.get("id"),
            )
        ]

    def _message_text_fallback(self, item: dict[str, Any]) -> list[TextChunk]:
        item_id = item.get("id") or ""
        if item_id in self._text_items_with_deltas:
            return []
        text = "".join(
            part.get("text") or "" for part in item.get("content") or [] if part.get("type") in ("output_text", "text")
        )
        if not text:
            return []
        self._text_items_with_deltas.add(item_id)
        self.text += text
        return [TextChunk(text)]

    def _turn_end(self, status: str, resp: dict[str, Any]) -> TurnEnd:
        usage_raw = resp.get("usage") or {}
        usage = Usage(
            input_tokens=int(usage_raw.get("input_tokens") or 0),
            output_tokens=int(usage_raw.get("output_tokens") or 0),
            cached_tokens=int((usage_raw.get("input_tokens_details") or {}).get("cached_tokens") or 0),
            reasoning_tokens=int((usage_raw.get("output_tokens_details") or {}).get("reasoning_tokens") or 0),
        )
        error = resp.get("error") or {}
        incomplete = resp.get("incomplete_details") or {}
        return TurnEnd(
            status=status,
            usage=usage,
            response_id=resp.get("id") or self.response_id,
            model=resp.get("model") or self.model,
            error_code=error.get("code") if error else None,
            error_message=error.get("message") if error else None,
            incomplete_reason=incomplete.get("reason") if incomplete else None,
        )
