"""The cheap upstream event decoder: the recorded streams decode to the same events, whatever
the chunking and line endings, and failures keep the SDK's exception types."""

from __future__ import annotations

import random

import httpx2
import openai
import pytest

from sigmachat.engines.upstream_events import SSEDecoder, decode_events, event_of
from sigmachat.engines.upstream_policy import classify_exception
from tests.engines.recorded import FIXTURES, events, raw

RECORDED = sorted(p.name for p in FIXTURES.glob("*.sse"))


def _decode(body: bytes, sizes: list[int]) -> list[bytes]:
    decoder, out, i = SSEDecoder(), [], 0
    for size in sizes:
        out += decoder.feed(body[i : i + size])
        i += size
    out += decoder.feed(body[i:])
    return out + decoder.flush()


@pytest.mark.parametrize("name", RECORDED)
@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_recorded_streams_decode_to_the_same_events_in_any_chunking(name: str, newline: bytes) -> None:
    body = raw(name).replace(b"\r\n", b"\n").replace(b"\n", newline)
    rng = random.Random(name)
    sizes = [rng.randint(1, 300) for _ in range(len(body) // 50 + 1)]
    got = [event_of(d) for d in _decode(body, sizes)]
    assert [e for e in got if e is not None] == events(name)


def test_multi_line_data_is_joined_and_other_fields_are_ignored() -> None:
    body = b': comment\nevent: x\nid: 7\ndata: {"type":\ndata: "a"}\n\ndata:{"type":"b"}\n\n'
    assert [event_of(d) for d in _decode(body, [3, 5, 11])] == [{"type": "a"}, {"type": "b"}]


def test_an_event_without_a_trailing_blank_line_still_counts_at_the_end() -> None:
    assert _decode(b'data: {"type":"a"}', []) == [b'{"type":"a"}']


def test_done_sentinel_ends_the_stream() -> None:
    assert event_of(b"[DONE]") is None


def test_an_error_object_is_the_sdks_stream_error() -> None:
    with pytest.raises(openai.APIError) as info:
        event_of(b'{"error": {"message": "boom"}}')
    assert classify_exception(info.value).code == "response_failed"


@pytest.mark.parametrize("data", [b"{not json", b"[1, 2]"])
def test_bad_json_is_a_malformed_event(data: bytes) -> None:
    with pytest.raises(ValueError) as info:
        event_of(data)
    assert classify_exception(info.value).code == "malformed_event"


async def test_a_dropped_connection_mid_body_is_a_network_error() -> None:
    class Dropping(httpx2.AsyncByteStream):
        async def __aiter__(self):
            yield b'data: {"type":"response.created","response":{}}\n\n'
            raise httpx2.RemoteProtocolError("peer closed connection")

    response = httpx2.Response(200, stream=Dropping(), request=httpx2.Request("POST", "http://up/v1/responses"))
    got = []
    with pytest.raises(openai.APIConnectionError) as info:
        async for event in decode_events(response):
            got.append(event)
    assert got == [{"type": "response.created", "response": {}}]
    assert classify_exception(info.value).code == "network_error"


async def test_the_request_body_is_the_one_the_sdk_would_send() -> None:
    import json

    from sigmachat.engines.upstream_events import stream_response_events

    sent: list[tuple[dict, dict]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append((json.loads(request.content), dict(request.headers)))
        body = b'data: {"type":"response.completed","response":{"id":"r","output":[]}}\n\n'
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body, request=request)

    client = openai.AsyncOpenAI(
        api_key="sk-test",
        base_url="http://up/v1",
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)),
    )
    kwargs = {
        "model": "gpt-4.1-mini",
        "instructions": "Be brief. «ünïcode»",
        "input": [{"role": "user", "content": "hi"}, {"type": "function_call_output", "call_id": "c1", "output": "{}"}],
        "tools": [
            {
                "type": "function",
                "name": "f",
                "description": "",
                "parameters": {"type": "object", "properties": {}},
                "strict": False,
            }
        ],
        "parallel_tool_calls": True,
        "store": False,
        "extra_headers": {"X-Sim-Scenario": "none"},
    }
    stream = await client.responses.create(stream=True, **kwargs)
    async for _ in stream:
        pass
    events = [e async for e in stream_response_events(client, **kwargs)]
    assert events == [{"type": "response.completed", "response": {"id": "r", "output": []}}]
    (sdk_body, sdk_headers), (our_body, our_headers) = sent
    assert our_body == sdk_body
    assert our_headers["x-sim-scenario"] == sdk_headers["x-sim-scenario"] == "none"


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
async def test_a_body_is_decoded_whether_sent_plain_or_compressed(encoding: str) -> None:
    import gzip

    body = b'data: {"type":"response.output_text.delta","delta":"Hi"}\n\ndata: [DONE]\n\n'
    headers = {"content-type": "text/event-stream"}
    if encoding == "gzip":
        body, headers["content-encoding"] = gzip.compress(body), "gzip"

    class Chunked(httpx2.AsyncByteStream):  # as a network delivers it: a few bytes at a time
        async def __aiter__(self):
            for i in range(0, len(body), 7):
                yield body[i : i + 7]

    request = httpx2.Request("POST", "http://up/v1/responses")
    response = httpx2.Response(200, headers=headers, stream=Chunked(), request=request)
    assert [e async for e in decode_events(response)] == [{"type": "response.output_text.delta", "delta": "Hi"}]
