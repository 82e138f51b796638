"""ResponsesEngine: the agent on the OpenAI Responses streaming API, in stateless full-input mode.

Every model call sends the instructions, the conversation history, and this run's
``reasoning`` / ``function_call`` / ``function_call_output`` items, so it works against OpenAI
and against OpenAI-compatible servers alike. Tool calls of one model turn run concurrently.
Against a server that only speaks Chat Completions (``ModelClient.api``) the same items go out
as chat messages and :class:`~sigmachat.engines.chat_completions.ChatCompletionsStreamReader`
reads the answer into the same outputs. Each call's output is bounded (``OutputBudget``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import openai

from sigmachat.agent.events import (
    EventFactory,
    Info,
    RunFailed,
    RunFinished,
    RunStarted,
    TextDelta,
    ToolCallRecord,
    ToolFinished,
    ToolStarted,
    Usage,
)
from sigmachat.agent.failures import incomplete_message, kind
from sigmachat.agent.instructions import instructions_for
from sigmachat.engines.base import (
    HistoryTurn,
    ModelEngine,
    OutputBudget,
    RunRequest,
    aclose_quietly,
    parse_tool_arguments,
    tool_outcome,
)
from sigmachat.engines.chat_completions import ChatCompletionsStreamReader, chat_request
from sigmachat.engines.responses_stream import (
    FunctionCall,
    ResponsesStreamReader,
    TextChunk,
    TurnEnd,
    error_fields,
)
from sigmachat.engines.upstream_events import stream_chat_events, stream_response_events
from sigmachat.logging import get_logger
from sigmachat.tools.registry import ToolContext

log = get_logger("sigmachat.engines.responses")

# What a stateless request asks to get back: the reasoning, encrypted, to send with the next turn.
STATELESS_INCLUDE = ("reasoning.encrypted_content",)

# Failures worth retrying when no output has been produced yet (the contract).
RETRYABLE_BEFORE_OUTPUT = frozenset(
    {"rate_limited", "upstream_error", "upstream_overloaded", "timeout", "network_error"}
)


class UpstreamFailure(Exception):
    """A classified failure of one model call. ``message`` is ours (safe to show); the
    upstream's own ``upstream_code`` / ``upstream_message`` go to logs and the runs table only."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        retry_after_ms: int | None = None,
        upstream_code: str | None = None,
        upstream_message: str | None = None,
        incomplete_reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after_ms = retry_after_ms
        self.upstream_code = upstream_code
        self.upstream_message = upstream_message
        self.incomplete_reason = incomplete_reason


def _upstream_error(exc: openai.APIError) -> tuple[str | None, str | None]:
    """The upstream's own (code, message) of an SDK error: its JSON error body when it sent one."""
    body = exc.body if isinstance(exc.body, dict) else {}
    code, message = error_fields(body)
    return code or exc.code, (message or exc.message)[:500]


def _retry_after_ms(exc: openai.APIStatusError) -> int | None:
    headers = exc.response.headers if exc.response is not None else {}
    if ms := headers.get("retry-after-ms"):
        try:
            return max(0, int(float(ms)))
        except ValueError:
            pass
    if sec := headers.get("retry-after"):
        try:
            return max(0, int(float(sec) * 1000))
        except ValueError:
            return None  # an HTTP-date: fall back to our own backoff
    return None


def classify_exception(exc: BaseException) -> UpstreamFailure:
    """Map an SDK/transport exception to a failure code of the shared taxonomy."""
    if isinstance(exc, UpstreamFailure):
        return exc
    if isinstance(exc, openai.APIError):
        failure = _classify_api_error(exc)
        failure.upstream_code, failure.upstream_message = _upstream_error(exc)
        return failure
    if isinstance(exc, ValueError):  # json.JSONDecodeError and pydantic errors are ValueErrors
        return UpstreamFailure("malformed_event", "upstream sent an event that is not valid JSON")
    return UpstreamFailure("internal_error", f"{type(exc).__name__}")


def _classify_api_error(exc: openai.APIError) -> UpstreamFailure:
    if isinstance(exc, openai.RateLimitError):
        return UpstreamFailure("rate_limited", "upstream rate limit (429)", retry_after_ms=_retry_after_ms(exc))
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return UpstreamFailure("upstream_auth", f"upstream refused credentials ({exc.status_code})")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status == 503 or status == 529:
            return UpstreamFailure(
                "upstream_overloaded", f"upstream overloaded ({status})", retry_after_ms=_retry_after_ms(exc)
            )
        if status >= 500:
            return UpstreamFailure("upstream_error", f"upstream error ({status})", retry_after_ms=_retry_after_ms(exc))
        if status == 408:
            return UpstreamFailure("timeout", "upstream request timeout (408)")
        return UpstreamFailure("bad_request", f"upstream rejected the request ({status})")
    if isinstance(exc, openai.APITimeoutError):
        return UpstreamFailure("timeout", "upstream timed out")
    if isinstance(exc, openai.APIConnectionError):
        return UpstreamFailure("network_error", "connection to upstream failed")
    # An SSE error event inside the stream (the SDK raises it for a payload with an "error" key).
    return UpstreamFailure("response_failed", "upstream stream error")


def bounded_failure(limit: int) -> UpstreamFailure:
    """The run's end when our output bound cut the answer (the upstream ignored the bound)."""
    return UpstreamFailure(
        "response_incomplete", incomplete_message("max_output_tokens", limit), incomplete_reason="max_output_tokens"
    )


def history_items(history: list[HistoryTurn], limit: int) -> list[dict[str, Any]]:
    """Earlier turns as Responses input items; tool calls replayed before the answer they fed."""
    items: list[dict[str, Any]] = []
    for turn in history[-limit:]:
        if turn.role == "user":
            items.append({"role": "user", "content": turn.text})
            continue
        for tc in turn.tool_calls:
            items.append(
                {"type": "function_call", "call_id": tc.call_id, "name": tc.name, "arguments": json.dumps(tc.arguments)}
            )
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": tc.call_id,
                    "output": tc.output or json.dumps({"summary": tc.summary}),
                }
            )
        if turn.text:
            items.append({"role": "assistant", "content": turn.text})
    return items


class ResponsesEngine(ModelEngine):
    name = "responses"

    async def stream(self, request: RunRequest) -> AsyncIterator[Any]:
        ev = EventFactory(request.run_id)
        started = time.perf_counter()
        model = request.model or self.mc.default_model
        yield ev.make(
            RunStarted, conversation_id=request.conversation_id, model=model, engine=self.name, offline=self.mc.offline
        )

        ctx = ToolContext(
            user_id=request.user_id,
            portfolio_id=request.portfolio_id,
            session_factory=self.session_factory,
            settings=self.settings,
        )
        instructions = instructions_for(
            as_of=self.settings.as_of_date,
            portfolio_id=request.portfolio_id,
            mode=request.mode,
            memories=request.memories,
        )
        items = history_items(request.history, self.settings.history_max_messages)
        items.append({"role": "user", "content": request.user_text})
        tools = self.registry.openai_tools()
        headers = {"X-Sim-Scenario": request.sim_scenario} if request.sim_scenario else None

        text = ""
        usage = Usage()
        ttfb_ms: float | None = None
        tool_records: list[ToolCallRecord] = []
        attempts_total = 0
        retries = 0
        switched = False
        previous_response_id: str | None = None
        pending_outputs: list[dict[str, Any]] = []
        response_id: str | None = None
        used_model = model
        limit = self.settings.max_output_tokens

        def failed(failure: UpstreamFailure) -> RunFailed:
            k = kind(failure.code)
            if failure.code == "internal_error" or failure.upstream_code or failure.upstream_message:
                log.warning(
                    "upstream_failure", run_id=request.run_id, code=failure.code,
                    upstream_code=failure.upstream_code, upstream_message=failure.upstream_message,
                )  # fmt: skip
            return ev.make(
                RunFailed,
                code=failure.code,
                # Our own words only; the one failure whose message carries detail says why an
                # answer was cut.
                message=failure.message if failure.code == "response_incomplete" else k.message,
                retryable=k.retryable,
                retry_after_ms=failure.retry_after_ms,
                partial_text=text,
                usage=usage,
                ttfb_ms=ttfb_ms,
                duration_ms=(time.perf_counter() - started) * 1000,
                tool_calls=tool_records,
                model=used_model,
                attempts=max(attempts_total, 1),
                retries=retries,
                fallback_used=switched,
                incomplete_reason=failure.incomplete_reason,
                upstream_code=failure.upstream_code,
                upstream_message=failure.upstream_message,
            )

        for _iteration in range(self.settings.max_tool_iterations):
            attempt = 0
            while True:
                attempt += 1
                attempts_total += 1
                budget = OutputBudget(limit)
                produced = False  # any text or tool event from this model call
                calls: list[FunctionCall] = []
                end: TurnEnd | None = None
                cut = False  # the output bound ended this model call
                stream = None
                try:
                    api = await self.mc.api()
                    reader: ResponsesStreamReader | ChatCompletionsStreamReader
                    if api == "chat_completions":
                        reader = ChatCompletionsStreamReader()
                        chat_kwargs = chat_request(
                            model=used_model, instructions=instructions, items=items, tools=tools,
                            max_output_tokens=limit, is_openai=self.mc.is_openai, extra_headers=headers,
                        )  # fmt: skip
                        stream = stream_chat_events(self.mc.client, **chat_kwargs)
                    else:
                        reader = ResponsesStreamReader()
                        responses_kwargs = self._responses_kwargs(
                            used_model, instructions, tools, items, previous_response_id, pending_outputs, headers,
                        )  # fmt: skip
                        # Plain dicts keyed on type, not the SDK's validated models (the hot path).
                        stream = stream_response_events(self.mc.client, **responses_kwargs)
                    async for raw in stream:
                        for out in reader.feed(raw):
                            if isinstance(out, TextChunk):
                                if not budget.admit(out.delta):
                                    cut = True
                                    break
                                produced = True
                                if ttfb_ms is None:
                                    ttfb_ms = (time.perf_counter() - started) * 1000
                                text += out.delta
                                yield ev.make(TextDelta, delta=out.delta)
                            elif isinstance(out, FunctionCall):
                                produced = True
                                budget.admit(out.arguments)
                                calls.append(out)
                            elif isinstance(out, TurnEnd):
                                end = out
                        if end is not None or cut or budget.exhausted:
                            cut = cut or (end is None and budget.exhausted)
                            break
                    if end is None and not cut:
                        for out in reader.finish():
                            if isinstance(out, FunctionCall):
                                produced = True
                                calls.append(out)
                            elif isinstance(out, TurnEnd):
                                end = out
                    if end is None and not cut:
                        raise UpstreamFailure("stream_incomplete", "the upstream stream ended without a terminal event")
                except (asyncio.CancelledError, GeneratorExit):
                    raise
                except Exception as exc:  # classified below; nothing escapes as a raw exception
                    failure = classify_exception(exc)
                    if failure.code == "internal_error":
                        log.exception("engine_unexpected_error", run_id=request.run_id)
                    if (
                        failure.code in RETRYABLE_BEFORE_OUTPUT
                        and not produced
                        and attempt < self.settings.retry_max_attempts
                    ):
                        retries += 1
                        delay = self.backoff_ms(attempt, failure.retry_after_ms)
                        yield ev.make(
                            Info, kind="retry_scheduled", attempt=attempt + 1, delay_ms=delay, reason=failure.code
                        )
                        if attempt == 1 and self.mc.fallback_model and self.mc.fallback_model != used_model:
                            yield ev.make(
                                Info,
                                kind="model_switch",
                                from_model=used_model,
                                to_model=self.mc.fallback_model,
                                reason=failure.code,
                            )
                            used_model = self.mc.fallback_model
                            switched = True
                        await self.sleep(delay / 1000)
                        continue
                    yield failed(failure)
                    return
                finally:
                    if stream is not None:
                        await aclose_quietly(stream)
                break

            if cut:
                # The upstream ignored the bound: our estimate stands in for its usage report.
                usage = usage + Usage(output_tokens=budget.used)
                log.warning("output_bound_enforced", run_id=request.run_id, limit=limit, estimated_tokens=budget.used)
                yield failed(bounded_failure(limit))
                return
            assert end is not None
            usage = usage + end.usage
            response_id = end.response_id or response_id
            reported_model = end.model or used_model
            if end.status == "failed":
                yield failed(UpstreamFailure(
                    "response_failed", kind("response_failed").message,
                    upstream_code=end.error_code, upstream_message=end.error_message,
                ))  # fmt: skip
                return
            if end.status == "incomplete":
                reason = end.incomplete_reason
                yield failed(UpstreamFailure(
                    "response_incomplete", incomplete_message(reason, limit), incomplete_reason=reason or "unknown",
                ))  # fmt: skip
                return
            if not calls:
                yield ev.make(
                    RunFinished,
                    final_text=text,
                    usage=usage,
                    ttfb_ms=ttfb_ms,
                    duration_ms=(time.perf_counter() - started) * 1000,
                    tool_calls=tool_records,
                    model=reported_model,
                    response_id=response_id,
                    attempts=attempts_total,
                    retries=retries,
                    fallback_used=switched,
                )
                return

            # Run this turn's calls concurrently; report each as it finishes.
            for call in calls:
                yield ev.make(
                    ToolStarted, call_id=call.call_id, name=call.name, arguments=parse_tool_arguments(call.arguments)
                )
            tasks = {asyncio.ensure_future(self._call_tool(call, ctx)): call for call in calls}
            try:
                for fut in asyncio.as_completed(list(tasks)):
                    call, result = await fut
                    record, finished = tool_outcome(call.call_id, call.name, call.arguments, result)
                    tool_records.append(record)
                    yield ev.make(ToolFinished, **finished)
            finally:
                for task in tasks:
                    if not task.done():
                        task.cancel()
            by_id = {r.call_id: r for r in tool_records}
            pending_outputs = []
            # Reasoning first, as the model produced it: a stateless reasoning model keeps its
            # chain of thought across tool turns only if its reasoning items come back.
            items.extend(getattr(reader, "reasoning_items", []))
            for call in calls:
                call_item = {
                    "type": "function_call",
                    "call_id": call.call_id,
                    "name": call.name,
                    "arguments": call.arguments,
                }
                output_item = {
                    "type": "function_call_output",
                    "call_id": call.call_id,
                    "output": by_id[call.call_id].output,
                }
                items.extend([call_item, output_item])
                pending_outputs.append(output_item)
            previous_response_id = response_id

        yield failed(UpstreamFailure("max_tool_iterations", kind("max_tool_iterations").message))

    def _responses_kwargs(
        self,
        model: str,
        instructions: str,
        tools: list[dict[str, Any]],
        items: list[dict[str, Any]],
        previous_response_id: str | None,
        pending_outputs: list[dict[str, Any]],
        headers: dict[str, str] | None,
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": model,
            "instructions": instructions,
            "tools": tools,
            "stream": True,
            "parallel_tool_calls": True,
            "max_output_tokens": self.settings.max_output_tokens,
        }
        if previous_response_id and self._use_previous_response_id:
            kwargs["previous_response_id"] = previous_response_id
            kwargs["input"] = pending_outputs
        else:
            kwargs["input"] = items
        if self._use_previous_response_id:
            kwargs["store"] = True
        else:
            # Stateless: reasoning comes back encrypted so it can be sent again next turn.
            kwargs["include"] = list(STATELESS_INCLUDE)
            if self.mc.is_openai and not self.mc.offline:
                kwargs["store"] = False
        if headers:
            kwargs["extra_headers"] = headers
        return kwargs

    @property
    def _use_previous_response_id(self) -> bool:
        return self.settings.responses_previous_response_id and self.mc.is_openai and not self.mc.offline

    async def _call_tool(self, call: FunctionCall, ctx: ToolContext):
        result = await self.registry.call(call.name, call.arguments, ctx)
        return call, result
