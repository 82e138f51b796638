"""A reloaded ChatKit thread carries what its live answers showed, as data on its items.

Each answer message carries entity sources (``Annotation.source``, type ``entity``): one for
its run (status, failure, offline flag, rating, run id) and one per tool call (name, title,
outcome). A client rendering a loaded thread needs nothing else, and the items stay valid
ChatKit items (every frame and page is validated through the SDK's own types).
"""

from __future__ import annotations

import asyncio
import shutil

import httpx
import pytest
from asgi_lifespan import LifespanManager
from chatkit.types import AssistantMessageItem, Page, Thread, ThreadItem
from pydantic import TypeAdapter

from sigmachat.agent.failures import kind
from sigmachat.api.app import create_app
from sigmachat.tools.registry import tool_title
from tests.chatkit.conftest import build_runtime
from tests.chatkit.helpers import add_message, create, parse_sse, req, validate
from tests.conftest import BASE_URL, HNW, INDIVIDUAL, login, make_settings
from tests.runs.fakes import ScriptedEngine

PAGE: TypeAdapter[Page[ThreadItem]] = TypeAdapter(Page[ThreadItem])


@pytest.fixture
async def client(tmp_path, template_db):
    shutil.copy(template_db, tmp_path / "sigmachat.db")
    settings = make_settings(
        tmp_path, allow_fault_injection=True, retry_base_delay_ms=0, fallback_model=None, send_rate_limit=""
    )
    app = create_app(settings)
    async with LifespanManager(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as c:
        yield c


async def post(client, headers, body: bytes, scenario: str | None = None) -> httpx.Response:
    extra = {"X-Sim-Scenario": scenario} if scenario else {}
    resp = await client.post("/chatkit", content=body, headers={**headers, "Content-Type": "application/json", **extra})
    assert resp.status_code == 200, resp.text
    return resp


def sources(item: AssistantMessageItem, kind_: str) -> list:
    return [
        a.source
        for part in item.content
        for a in part.annotations
        if a.source.type == "entity" and a.source.data.get("sigmachat") == kind_
    ]


def streamed_answer(resp: httpx.Response) -> AssistantMessageItem:
    done = [f.event.item for f in parse_sse(resp.text) if f.type == "thread.item.done"]
    return next(i for i in reversed(done) if isinstance(i, AssistantMessageItem))


async def test_a_loaded_thread_carries_tools_failures_offline_flag_and_ratings(client):
    headers = await login(client, HNW)
    # 1. An answer of the offline model with a tool call that worked.
    first = await post(client, headers, create("What is my largest position?"))
    thread_id = parse_sse(first.text)[0].event.thread.id
    # 2. A tool call that failed (the model called it with invalid arguments), then an answer.
    second = await post(client, headers, add_message(thread_id, "What is my volatility?"), "tool_error")
    # 3. A run that failed before it wrote anything (the AI service answers 500 every time).
    third = await post(client, headers, add_message(thread_id, "And my sector exposure?"), "server_error")
    live = [streamed_answer(r) for r in (first, second, third)]

    # Ratings, on either API: they land on the same answer rows.
    feedback = req("items.feedback", thread_id=thread_id, item_ids=[live[0].id], kind="positive")
    await post(client, headers, feedback)
    rated = await client.post(f"/api/v1/chat/messages/{live[1].id}/feedback", json={"rating": "down"}, headers=headers)
    assert rated.status_code in (200, 201), rated.text

    listed = await post(client, headers, req("items.list", thread_id=thread_id, order="asc", limit=50))
    page = PAGE.validate_json(listed.text)  # still valid ChatKit items
    thread = Thread.model_validate_json(
        (await post(client, headers, req("threads.get_by_id", thread_id=thread_id))).text
    )
    assert [i.id for i in thread.items.data] == [i.id for i in page.data]
    for items in (page.data, thread.items.data):
        answers = [i for i in items if isinstance(i, AssistantMessageItem)]
        assert [a.id for a in answers] == [a.id for a in live]
        ok, tool_failed, run_failed = answers

        [run] = sources(ok, "run")
        assert run.data["status"] == "complete" and run.data["offline"] == "true"
        assert run.data["run_id"].startswith("run_") and run.data["feedback"] == "positive"
        [tool] = sources(ok, "tool")[:1]
        assert tool.data["status"] == "ok" and tool.title == tool_title(tool.data["name"])
        assert tool.description  # the tool's one-line summary

        [run] = sources(tool_failed, "run")
        assert run.data["status"] == "complete" and run.data["feedback"] == "negative" and "code" not in run.data
        outcomes = {(t.data["name"], t.data["status"]) for t in sources(tool_failed, "tool")}
        assert any(status == "error" for _name, status in outcomes), outcomes
        assert all(t.title == tool_title(t.data["name"]) for t in sources(tool_failed, "tool"))

        # The failed run has an (empty) answer that says how it ended.
        assert run_failed.content[0].text == ""
        [run] = sources(run_failed, "run")
        failure = kind("upstream_error")
        assert run.data["status"] == failure.message_status == "failed"
        assert run.data["code"] == "upstream_error" and run.data["error_type"] == failure.legacy_type
        assert run.data["retryable"] == "true" and run.description == failure.message
        assert "feedback" not in run.data

        # Every datum a string: ChatKit.js types entity data as Record<string, string>.
        for answer in answers:
            for part in answer.content:
                assert all(isinstance(v, str) for a in part.annotations for v in a.source.data.values())

    # What the stream ended with is what the thread reloads as (the unrated answer exactly).
    assert live[2] == run_failed
    assert [a.source for a in live[0].content[0].annotations][1:] == sources(ok, "tool")


async def test_another_user_cannot_read_the_sources(client):
    headers = await login(client, HNW)
    first = await post(client, headers, create("What is my largest position?"))
    thread_id = parse_sse(first.text)[0].event.thread.id
    other = await login(client, INDIVIDUAL)
    body = req("items.list", thread_id=thread_id, order="asc")
    resp = await client.post("/chatkit", content=body, headers={**other, "Content-Type": "application/json"})
    assert resp.status_code == 404 and "sigmachat" not in resp.text


async def test_an_answer_still_being_written_carries_its_run_to_follow(services):
    """A reload mid-run: the answer item (no text saved yet) says 'streaming' and which run to follow."""
    gate = asyncio.Event()
    rt = await build_runtime(services, ScriptedEngine(gate=gate), chatkit_disconnect="continue")
    try:
        handle = await rt.server.handle(create(), rt.ctx())
        seen = []
        async for _tag, data in handle.frames:
            seen.append(validate(data))
            if seen[-1].type == "thread.item.updated" and seen[-1].update.type.endswith("text_delta"):
                break
        await handle.frames.aclose()  # the page reloads
        thread_id = seen[0].thread.id
        items = (await rt.server.store.load_thread_items(thread_id, None, 20, "asc", rt.ctx())).data
        answer = items[-1]
        assert isinstance(answer, AssistantMessageItem)
        [run] = sources(answer, "run")
        assert run.data["status"] == "streaming" and run.data["run_id"] == handle.run_id
        gate.set()
        await rt.manager.wait_finished(handle.run_id, 5)
        items = (await rt.server.store.load_thread_items(thread_id, None, 20, "asc", rt.ctx())).data
        [run] = sources(items[-1], "run")
        assert run.data["status"] == "complete"
        assert [t.data["name"] for t in sources(items[-1], "tool")] == ["get_portfolio_complete"]
    finally:
        gate.set()
        await rt.manager.shutdown(5)
        await rt.server.drain()
