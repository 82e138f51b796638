"""The offline model's HTTP semantics, independent of how the bytes travel.

:class:`OfflineModelServer` answers ``POST /v1/responses`` (streaming and not) and
``GET /v1/models`` the way OpenAI does: JSON errors for bad requests, a ``text/event-stream``
body produced incrementally by an async generator with realistic pacing (time to first byte,
tokens per second). Two adapters carry it: the in-process httpx2 transport
(:mod:`sigmachat.offline.transport`, no port) and the simulator's ASGI app
(:mod:`sigmachat.sim.app`). Fault scenarios plug in through the small :class:`FaultInjector`
protocol; the simulator provides one, the product's offline mode normally runs without.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import (
    AsyncGenerator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
)
from dataclasses import dataclass, field
from typing import Any, Protocol

from sigmachat.offline import chat
from sigmachat.offline.analyst import OfflineAnalyst
from sigmachat.offline.protocol import (
    OFFLINE_METADATA,
    ResponseBuilder,
    Turn,
    encode_sse,
    error_body,
    response_object,
    turn_events,
)

# Events that carry one generated token each: the ones paced at tokens_per_s.
TOKEN_EVENTS = frozenset({"response.output_text.delta", "response.function_call_arguments.delta"})


class ConnectionDropped(Exception):
    """A fault asked for the connection to be cut (before the response, or mid-body).

    Adapters turn it into what a real drop looks like on their side: the httpx2 transport
    raises ``httpx2.ReadError`` (a reset); the simulator's server aborts the TCP connection.
    """

    def __init__(self, *, before_response: bool) -> None:
        super().__init__("connection dropped before the response" if before_response else "connection dropped mid-body")
        self.before_response = before_response


DROP = object()  # a stream frame meaning "cut the connection here"
Frame = dict[str, Any] | bytes | object  # an event, raw bytes (malformed on purpose), or DROP


@dataclass(frozen=True, slots=True)
class Pacing:
    ttfb_ms: float = 0.0
    tokens_per_s: float = 0.0  # 0: no pacing

    @property
    def token_delay_s(self) -> float:
        return 1.0 / self.tokens_per_s if self.tokens_per_s > 0 else 0.0


@dataclass(slots=True)
class ServerRequest:
    method: str
    path: str
    headers: Mapping[str, str]  # lower-case names
    body: bytes = b""


@dataclass(slots=True)
class ServerResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    stream: AsyncGenerator[bytes] | None = None  # when set, the body is streamed from it (and closed after)


class ActiveFault(Protocol):
    """One request's fault scenario. Each hook may leave the normal behaviour unchanged."""

    name: str

    def http_error(self) -> ServerResponse | None:
        """An HTTP error answer instead of a response (429, 500, 503, ...)."""

    def drop_before_response(self) -> bool:
        """Cut the connection before any byte of a response."""

    def adjust_turn(self, request: dict[str, Any], turn: Turn) -> Turn:
        """Change what the model says (e.g. call a tool with invalid arguments)."""

    def pacing(self, pacing: Pacing) -> Pacing:
        """Change the timing (e.g. slow tokens)."""

    def stream(self, events: Iterator[dict[str, Any]], builder: ResponseBuilder, turn: Turn) -> Iterable[Frame]:
        """Rewrite the event stream: truncate, corrupt, end it early or fail it."""

    def json_body(self, response: dict[str, Any], builder: ResponseBuilder, turn: Turn) -> Iterable[Frame] | None:
        """Rewrite a non-streaming answer (frames of raw bytes or DROP), or None to keep it."""


@dataclass(frozen=True, slots=True)
class FaultChoice:
    fault: ActiveFault | None = None
    model: str | None = None  # the model name to report (e.g. with a scenario suffix removed)
    error: str | None = None  # an invalid scenario: answered with a 400


class FaultInjector(Protocol):
    """Chooses the fault of a request (from a header, a model-name suffix, ...)."""

    def choose(self, headers: Mapping[str, str], body: dict[str, Any]) -> FaultChoice: ...


def default_created_at(as_of: dt.date) -> int:
    """A deterministic ``created_at``: the as-of date's US market close (21:00 UTC).

    The offline model is a pure function of its request, so its responses carry no wall
    clock; the analytics as-of date is the honest 'when' of an offline answer.
    """
    return int(dt.datetime.combine(as_of, dt.time(21, 0), tzinfo=dt.UTC).timestamp())


def _json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> ServerResponse:
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return ServerResponse(status, {"content-type": "application/json", **(headers or {})}, body)


class OfflineModelServer:
    """The Responses API of the offline analyst. One instance serves many requests."""

    def __init__(
        self,
        *,
        model_name: str,
        pacing: Pacing = Pacing(),
        created_at: int | None = None,
        analyst: OfflineAnalyst | None = None,
        faults: FaultInjector | None = None,
        listed_models: Iterable[str] = (),
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        apis: Iterable[str] = ("responses", "chat_completions"),
    ) -> None:
        self.model_name = model_name
        self.pacing = pacing
        self.created_at = created_at if created_at is not None else default_created_at(dt.date(2025, 7, 11))
        self.analyst = analyst or OfflineAnalyst()
        self.faults = faults
        self.listed_models = [model_name, *[m for m in listed_models if m and m != model_name]]
        self._sleep = sleep
        self.apis = frozenset(apis)  # a simulator without /responses stands for a Chat-only server

    async def handle(self, request: ServerRequest) -> ServerResponse:
        path = request.path.rstrip("/")
        if path.endswith("/chat/completions") and "chat_completions" in self.apis:
            if request.method != "POST":
                return _json_response(405, error_body(f"Method {request.method} not allowed on {request.path}."))
            return await self._chat_completions(request)
        if path.endswith("/responses") and "responses" in self.apis:
            if request.method != "POST":
                return _json_response(405, error_body(f"Method {request.method} not allowed on {request.path}."))
            return await self._responses(request)
        if path.endswith("/models"):
            if request.method != "GET":
                return _json_response(405, error_body(f"Method {request.method} not allowed on {request.path}."))
            return self._models()
        if "/models/" in path and request.method == "GET":
            model_id = path.rsplit("/models/", 1)[1]
            if model_id in self.listed_models:
                return _json_response(200, self._model_card(model_id))
            return _json_response(404, error_body(f"The model '{model_id}' does not exist.", code="model_not_found"))
        return _json_response(404, error_body(f"Unknown path {request.path}.", code="not_found"))

    def _model_card(self, model_id: str) -> dict[str, Any]:
        return {"id": model_id, "object": "model", "created": self.created_at, "owned_by": "sigmachat-offline"}

    def _models(self) -> ServerResponse:
        return _json_response(200, {"object": "list", "data": [self._model_card(m) for m in self.listed_models]})

    async def _responses(self, request: ServerRequest) -> ServerResponse:
        body = _json_body(request)
        if isinstance(body, ServerResponse):
            return body
        problem = _validate(body)
        if problem is not None:
            return _json_response(400, error_body(problem[1], param=problem[0], code="invalid_value"))
        return await self._answer(request, body, chat_request=None)

    async def _chat_completions(self, request: ServerRequest) -> ServerResponse:
        """The same model and faults over the Chat Completions API (see :mod:`offline.chat`)."""
        raw = _json_body(request)
        if isinstance(raw, ServerResponse):
            return raw
        problem = chat.validate_chat(raw)
        if problem is not None:
            return _json_response(400, error_body(problem[1], param=problem[0], code="invalid_value"))
        return await self._answer(request, chat.responses_body(raw), chat_request=raw)

    async def _answer(
        self, request: ServerRequest, body: dict[str, Any], *, chat_request: dict[str, Any] | None
    ) -> ServerResponse:
        fault: ActiveFault | None = None
        model = str(body["model"])
        if self.faults is not None:
            choice = self.faults.choose(request.headers, body)
            if choice.error:
                return _json_response(400, error_body(choice.error, param="model", code="invalid_scenario"))
            fault, model = choice.fault, choice.model or model
        if fault is not None:
            if fault.drop_before_response():
                raise ConnectionDropped(before_response=True)
            failure = fault.http_error()
            if failure is not None:
                return failure

        turn = self.analyst.respond(body)
        if fault is not None:
            turn = fault.adjust_turn(body, turn)
        builder = ResponseBuilder(body, model=model, created_at=self.created_at, metadata=OFFLINE_METADATA)
        headers = {"x-request-id": "req_" + builder.id[len("resp_") : len("resp_") + 32], "openai-model": model}

        pacing = fault.pacing(self.pacing) if fault is not None else self.pacing
        if not body.get("stream"):
            obj = response_object(builder, turn, body)
            # A non-streaming answer arrives when the whole generation would have finished.
            delay = pacing.ttfb_ms / 1000 + (obj["usage"]["output_tokens"] * pacing.token_delay_s)
            if delay > 0:
                await self._sleep(delay)
            if chat_request is not None:  # body faults are Responses-only here; HTTP faults apply
                return _json_response(200, chat.completion_object(obj, builder), headers)
            frames = fault.json_body(obj, builder, turn) if fault is not None else None
            if frames is None:
                return _json_response(200, obj, headers)
            return ServerResponse(
                200,
                {"content-type": "application/json", **headers},
                stream=self._frames(frames, Pacing(), first_delay=True),
            )

        turn_stream = turn_events(builder, turn, body)
        events: Iterable[Frame] = turn_stream if fault is None else fault.stream(turn_stream, builder, turn)
        sse_headers = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", **headers}
        if chat_request is not None:
            include_usage = bool((chat_request.get("stream_options") or {}).get("include_usage"))
            frames = chat.ChunkEncoder(builder, include_usage=include_usage).frames(events)
            chunks = self._frames(frames, pacing, first_delay=True, chat_frames=True)
            return ServerResponse(200, sse_headers, stream=chunks)
        return ServerResponse(200, sse_headers, stream=self._frames(events, pacing, first_delay=True))

    async def _frames(
        self, frames: Iterable[Frame], pacing: Pacing, *, first_delay: bool, chat_frames: bool = False
    ) -> AsyncGenerator[bytes]:
        """Encode and pace frames one by one: nothing is produced before it is due."""
        first = True
        for frame in frames:
            if first:
                first = False
                if first_delay and pacing.ttfb_ms > 0:
                    await self._sleep(pacing.ttfb_ms / 1000)
            elif isinstance(frame, dict) and pacing.token_delay_s and _is_token(frame, chat_frames):
                await self._sleep(pacing.token_delay_s)
            if frame is DROP:
                raise ConnectionDropped(before_response=False)
            if isinstance(frame, dict):
                yield chat.encode_chunk(frame) if chat_frames else encode_sse(frame)
            elif isinstance(frame, bytes):
                yield frame


def _is_token(frame: dict[str, Any], chat_frame: bool) -> bool:
    return chat.is_token_chunk(frame) if chat_frame else frame.get("type") in TOKEN_EVENTS


def _json_body(request: ServerRequest) -> dict[str, Any] | ServerResponse:
    try:
        body = json.loads(request.body or b"null")
    except ValueError:
        return _json_response(400, error_body("We could not parse the JSON body of your request."))
    if not isinstance(body, dict):
        return _json_response(400, error_body("The request body must be a JSON object."))
    return body


def _validate(body: dict[str, Any]) -> tuple[str, str] | None:
    """(param, message) of the first problem OpenAI would reject with 400, or None."""
    if not isinstance(body.get("model"), str) or not body["model"].strip():
        return "model", "Missing required parameter: 'model'."
    raw_input = body.get("input")
    if raw_input is None:
        return "input", "Missing required parameter: 'input'."
    if not isinstance(raw_input, str | list):
        return "input", "Invalid type for 'input': expected a string or an array of input items."
    if "tools" in body and body["tools"] is not None and not isinstance(body["tools"], list):
        return "tools", "Invalid type for 'tools': expected an array."
    if "stream" in body and body["stream"] is not None and not isinstance(body["stream"], bool):
        return "stream", "Invalid type for 'stream': expected a boolean."
    if body.get("previous_response_id"):
        # Nothing is stored between requests, so a previous response cannot be found.
        return (
            "previous_response_id",
            "This model is stateless: send the full conversation as input instead of previous_response_id.",
        )
    return None
