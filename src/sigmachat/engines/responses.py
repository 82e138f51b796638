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

from sigmachat.agent.events import (
    AgentEvent,
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
)
from sigmachat.engines.upstream_events import stream_chat_events, stream_response_events
from sigmachat.engines.upstream_policy import ModelCalls, UpstreamFailure
from sigmachat.tools.registry import ToolContext, ToolResult

# What a stateless request asks to get back: the reasoning, encrypted, to send with the next turn.
STATELESS_INCLUDE = ("reasoning.encrypted_content",)


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

    async def stream(self, request: RunRequest) -> AsyncIterator[AgentEvent]:
        ev = EventFactory(request.run_id)
        started = time.perf_counter()
        model = request.model or self.mc.default_model
        yield ev.make(
            RunStarted, conversation_id=request.conversation_id, model=model, engine=self.name, offline=self.mc.offline
        )

        ctx = self.tool_context(request)
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
        policy = self.policy

        text = ""
        usage = Usage()
        ttfb_ms: float | None = None
        tool_records: list[ToolCallRecord] = []
        calls = ModelCalls(model=model)
        previous_response_id: str | None = None
        pending_outputs: list[dict[str, Any]] = []
        response_id: str | None = None
        limit = self.settings.max_output_tokens

        def failed(failure: UpstreamFailure) -> RunFailed:
            return policy.run_failed(
                ev, failure, calls, partial_text=text, usage=usage, ttfb_ms=ttfb_ms,
                duration_ms=(time.perf_counter() - started) * 1000, tool_calls=tool_records,
            )  # fmt: skip

        for _iteration in range(self.settings.max_tool_iterations):
            attempt = 0
            while True:
                attempt += 1
                calls.attempts += 1
                budget = OutputBudget(limit)
                produced = False  # any text or tool event from this model call
                function_calls: list[FunctionCall] = []
                end: TurnEnd | None = None
                cut = False  # the output bound ended this model call
                failure: UpstreamFailure | None = None
                stream: AsyncIterator[dict[str, Any]] | None = None
                try:
                    api = await self.mc.api()
                    reader: ResponsesStreamReader | ChatCompletionsStreamReader
                    if api == "chat_completions":
                        reader = ChatCompletionsStreamReader()
                        chat_kwargs = chat_request(
                            model=calls.model, instructions=instructions, items=items, tools=tools,
                            max_output_tokens=limit, is_openai=self.mc.is_openai, extra_headers=headers,
                        )  # fmt: skip
                        stream = stream_chat_events(self.mc.client, **chat_kwargs)
                    else:
                        reader = ResponsesStreamReader()
                        responses_kwargs = self._responses_kwargs(
                            calls.model, instructions, tools, items, previous_response_id, pending_outputs, headers,
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
                                function_calls.append(out)
                            elif isinstance(out, TurnEnd):
                                end = out
                        if end is not None or cut or budget.exhausted:
                            cut = cut or (end is None and budget.exhausted)
                            break
                    if end is None and not cut:
                        for out in reader.finish():
                            if isinstance(out, FunctionCall):
                                produced = True
                                function_calls.append(out)
                            elif isinstance(out, TurnEnd):
                                end = out
                    if cut:
                        failure = policy.turn_failure("bounded", estimated_tokens=budget.used)
                    elif end is None:
                        failure = policy.turn_failure(None)
                    else:
                        failure = policy.turn_failure(
                            end.status, error_code=end.error_code, error_message=end.error_message,
                            incomplete_reason=end.incomplete_reason, usage=end.usage,
                        )  # fmt: skip
                        if failure is None:
                            usage = usage + end.usage
                except (asyncio.CancelledError, GeneratorExit):
                    raise
                except Exception as exc:  # classified; nothing escapes as a raw exception
                    failure = policy.classify(exc)
                finally:
                    if stream is not None:
                        await aclose_quietly(stream)
                if failure is None:
                    break
                retry = policy.retry(failure, attempt=attempt, produced=produced, calls=calls)
                if retry is None:
                    yield failed(failure)
                    return
                for notice in retry.notices():
                    yield ev.make(Info, **notice)
                await self.sleep(retry.delay_ms / 1000)

            assert end is not None  # a call that did not end completed has failed above
            response_id = end.response_id or response_id
            if not function_calls:
                yield ev.make(
                    RunFinished,
                    final_text=text,
                    usage=usage,
                    ttfb_ms=ttfb_ms,
                    duration_ms=(time.perf_counter() - started) * 1000,
                    tool_calls=tool_records,
                    model=end.model or calls.model,
                    response_id=response_id,
                    attempts=calls.attempts,
                    retries=calls.retries,
                    fallback_used=calls.fallback_used,
                )
                return

            # Run this turn's calls concurrently; report each as it finishes.
            for call in function_calls:
                yield ev.make(
                    ToolStarted, call_id=call.call_id, name=call.name, arguments=parse_tool_arguments(call.arguments)
                )
            tasks = {asyncio.ensure_future(self._call_tool(call, ctx)): call for call in function_calls}
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
            for call in function_calls:
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

        yield failed(UpstreamFailure("max_tool_iterations"))

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

    async def _call_tool(self, call: FunctionCall, ctx: ToolContext) -> tuple[FunctionCall, ToolResult]:
        result = await self.registry.call(call.name, call.arguments, ctx)
        return call, result
