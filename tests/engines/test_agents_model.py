"""The Agents SDK engine's cheap stream: events built by the class their ``type`` names, the
recorded streams (and the same streams without sequence numbers) still make whole answers."""

from __future__ import annotations

import httpx2
import pytest
from openai.types.responses import ResponseCompletedEvent, ResponseOutputItemDoneEvent, ResponseTextDeltaEvent

from sigmachat.engines.agents import _DEEP as _DEEP_TYPES
from sigmachat.engines.agents import AgentsEngine, stream_event
from sigmachat.engines.base import RunRequest
from sigmachat.engines.model_client import build_model_client
from tests.conftest import make_settings
from tests.engines.recorded import FIXTURES, events
from tests.engines.test_responses_engine import FakeRegistry, Upstream, sse

RECORDED = sorted(p.name for p in FIXTURES.glob("*.sse"))
OMITTED = ("sequence_number", "output_index")  # what OpenAI-compatible servers leave out


def _strip(evts: list[dict]) -> list[dict]:
    return [{k: v for k, v in e.items() if k not in OMITTED} for e in evts]


def _body(evts: list[dict]) -> bytes:
    import json

    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in evts)


@pytest.mark.parametrize("name", RECORDED)
def test_every_recorded_event_becomes_the_class_its_type_names(name: str) -> None:
    for data in events(name):
        event = stream_event(data)
        assert event.type == data["type"]
        if data["type"] == "response.output_text.delta":
            assert isinstance(event, ResponseTextDeltaEvent) and event.delta == data["delta"]
        if data["type"] == "response.completed":
            assert isinstance(event, ResponseCompletedEvent)
            assert event.response.id == data["response"]["id"]  # nested models, as the runner reads them
        if data["type"] == "response.output_item.done":
            assert isinstance(event, ResponseOutputItemDoneEvent) and event.item.type == data["item"]["type"]


def test_a_delta_without_sequence_number_or_output_index_reads_them_as_none() -> None:
    event = stream_event({"type": "response.output_text.delta", "item_id": "msg_1", "content_index": 0, "delta": "Hi"})
    assert isinstance(event, ResponseTextDeltaEvent)
    assert (event.delta, event.sequence_number, event.output_index) == ("Hi", None, None)


@pytest.mark.parametrize("strip", [False, True], ids=["recorded", "without-sequence-numbers"])
async def test_agents_engine_streams_a_recorded_answer_whole(tmp_path, strip: bool) -> None:
    evts = events("stream-basic-text-responses-1.sse")
    up = Upstream(sse(_body(_strip(evts) if strip else evts)))
    settings = make_settings(tmp_path, openai_api_key="sk-test", retry_base_delay_ms=0)
    mc = build_model_client(settings, http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(up.handler)))
    engine = AgentsEngine(mc, FakeRegistry(), settings, session_factory=None)
    request = RunRequest(run_id="run_t", user_id="u1", user_text="hello", conversation_id="thr_1", portfolio_id="pf1")
    out = [e async for e in engine.stream(request)]
    assert [e.seq for e in out] == list(range(1, len(out) + 1))
    done = out[-1]
    assert done.type == "run_finished", done
    completed = next(e for e in evts if e["type"] == "response.completed")
    assert done.final_text == "".join(e.delta for e in out if e.type == "text_delta")
    assert done.final_text == completed["response"]["output"][-1]["content"][0]["text"]
    assert done.usage.output_tokens == completed["response"]["usage"]["output_tokens"]
    assert up.requests[0]["stream"] is True


@pytest.mark.parametrize("name", ["stream-basic-text-responses-1.sse", "stream-with-tools-responses-1.sse"])
async def test_deltas_are_taken_as_dicts_and_never_typed(tmp_path, monkeypatch, name: str) -> None:
    """The per-token path: every ``*.delta`` event is taken by the guard's hook before it is
    typed (one model and three generator layers per token otherwise), and the answer is whole."""
    import sigmachat.engines.agents as agents_engine

    typed: list[str] = []
    real = agents_engine.stream_event

    def counting(data: dict):
        typed.append(data["type"])
        return real(data)

    monkeypatch.setattr(agents_engine, "stream_event", counting)
    evts = events(name)
    assert any(e["type"].endswith(".delta") for e in evts)
    up = Upstream(sse(_body(evts)), sse(_body(events("stream-basic-text-responses-1.sse"))))
    settings = make_settings(tmp_path, openai_api_key="sk-test", retry_base_delay_ms=0)
    mc = build_model_client(settings, http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(up.handler)))
    engine = AgentsEngine(mc, FakeRegistry(), settings, session_factory=None)
    request = RunRequest(run_id="run_t", user_id="u1", user_text="hello", conversation_id="thr_1", portfolio_id="pf1")
    out = [e async for e in engine.stream(request)]
    assert out[-1].type == "run_finished", out[-1]
    assert typed and not [t for t in typed if t.endswith(".delta")]
    streamed = [e.delta for e in out if e.type == "text_delta"]
    assert streamed and out[-1].final_text == "".join(streamed)
    if "tools" in name:
        assert [e.type for e in out].count("tool_finished") >= 1


@pytest.mark.parametrize("name", RECORDED)
def test_deep_events_equal_the_sdk_s_lenient_construction(name: str) -> None:
    """The events the runner reads in depth are validated when they can be (fast), else built by
    the SDK's lenient constructor: either way the same model, fields set included, except the
    final response's echo of the request (tools, instructions), which nothing reads."""
    from openai._models import construct_type

    from sigmachat.engines.agents import _DEEP, _EVENT_CLASSES

    for data in events(name):
        if data["type"] not in _DEEP:
            continue
        ours = stream_event(data)
        expected = data
        if isinstance(data.get("response"), dict):
            expected = {**data, "response": {**data["response"], "tools": [], "instructions": None}}
            assert ours.response.tools == [] and ours.response.instructions is None
        sdk = construct_type(type_=_EVENT_CLASSES[data["type"]], value=expected)
        assert type(ours) is type(sdk)
        assert ours.model_dump(exclude_unset=True) == sdk.model_dump(exclude_unset=True)
        assert ours.model_dump() == sdk.model_dump()


def test_a_final_response_keeps_what_the_runner_reads_and_drops_the_request_echo() -> None:
    """The final response carried every tool schema and the instructions back (14 KB with our
    tools), and building them was ~3 ms per model turn; the runner reads output, usage, id, model."""
    for name in RECORDED:
        for data in events(name):
            if data["type"] != "response.completed" or not data["response"].get("tools"):
                continue
            event = stream_event(data)
            response = data["response"]
            assert (event.response.id, event.response.model) == (response["id"], response["model"])
            assert [o.type for o in event.response.output] == [o["type"] for o in response["output"]]
            assert event.response.usage.output_tokens == response["usage"]["output_tokens"]
            assert event.response.tools == [] and data["response"]["tools"]  # the caller's dict is untouched
            return
    pytest.fail("no recorded final response echoes tools")


def test_a_final_response_missing_a_required_usage_field_is_built_leniently_only_there(monkeypatch) -> None:
    """Recorded OpenAI streams (and compatible servers) send no ``cache_write_tokens``, which
    this SDK version requires: only the usage details are built by the lenient constructor
    (0.6-0.9 ms per model turn for the whole event); the rest is validated."""
    import sigmachat.engines.agents as agents_engine

    built: list[object] = []
    real = agents_engine.construct_type

    def recording(*, type_, value):
        built.append(type_)
        return real(type_=type_, value=value)

    monkeypatch.setattr(agents_engine, "construct_type", recording)
    data = next(e for e in events("stream-with-tools-responses-1.sse") if e["type"] == "response.completed")
    assert "cache_write_tokens" not in data["response"]["usage"]["input_tokens_details"]
    event = stream_event(data)
    assert [getattr(t, "__name__", t) for t in built] == ["InputTokensDetails"]
    assert isinstance(event, ResponseCompletedEvent)
    assert [type(o).__name__ for o in event.response.output] == ["ResponseFunctionToolCall"] * len(
        data["response"]["output"]
    )
    assert event.response.usage.input_tokens_details.cached_tokens == 0


def test_the_deep_event_validators_are_built_with_the_engine(tmp_path) -> None:
    """The openai SDK defers building its models' validators to their first use: ~0.45 s of CPU
    inside the first answer, holding up every stream on the loop. The engine builds them.
    (In a fresh interpreter: other tests here build them by streaming.)"""
    import subprocess
    import sys

    code = """
import sys
from pydantic._internal._mock_val_ser import MockValSer
from sigmachat.engines.agents import _DEEP, _EVENT_CLASSES, AgentsEngine
from sigmachat.engines.model_client import build_model_client
from tests.conftest import make_settings
from tests.engines.test_responses_engine import FakeRegistry
from pathlib import Path

def deferred():
    return sorted(t for t in _DEEP if isinstance(_EVENT_CLASSES[t].__pydantic_validator__, MockValSer))

before = deferred()
settings = make_settings(Path(sys.argv[1]), openai_api_key="sk-test")
AgentsEngine(build_model_client(settings), FakeRegistry(), settings, session_factory=None)
print(before, deferred())
"""
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == f"{sorted(_DEEP_TYPES)} []", done.stdout + done.stderr
