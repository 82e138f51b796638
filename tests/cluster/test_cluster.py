"""Two instances on PostgreSQL + Redis behind nginx round robin: runs move, owners die, drains.

Everything is real: PostgreSQL, Redis and nginx from the Debian packages, two ``sigmachat
serve`` processes, the built-in offline model pacing its answers (250 ms to the first token,
60 tokens/s) so that a run is still being written when we interfere with it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from sigmachat.bench.cluster import Cluster, MissingTool, cluster

pytestmark = pytest.mark.cluster

QUESTION = "Give me a full risk overview of my portfolio: exposures, concentration and volatility."
LEASE_S = 3.0  # short leases keep the test quick; the 15 s promise holds for the 9 s default too


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    try:
        with cluster(
            tmp_path_factory.mktemp("cluster"),
            extra_env={"SIGMACHAT_RUN_LEASE_TTL_S": str(LEASE_S), "SIGMACHAT_SHUTDOWN_GRACE_S": "30"},
        ) as c:
            yield c
    except MissingTool as exc:
        pytest.skip(str(exc))


def _login(base: str, email: str = "demo_hnw@sigmasight.com") -> dict[str, str]:
    resp = httpx.post(f"{base}/api/v1/auth/login", json={"email": email, "password": "demo12345"}, timeout=30)
    assert resp.status_code == 200, resp.text
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


def _conversation(base: str, headers: dict[str, str]) -> str:
    resp = httpx.post(f"{base}/api/v1/chat/conversations", json={}, headers=headers, timeout=30)
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


def _frames(response: httpx.Response) -> Iterator[dict]:
    """Legacy SSE frames as their JSON envelopes (heartbeats and comments skipped)."""
    event_id = None
    for line in response.iter_lines():
        if line.startswith("id:"):
            event_id = line[3:].strip()
        elif line.startswith("data:"):
            envelope = json.loads(line[5:].strip())
            envelope["_id"] = event_id
            yield envelope


def _start(base: str, headers: dict[str, str], conv: str, *, tokens: int) -> tuple[str, str, int, str]:
    """Send on ``base``, read ``tokens`` token frames, drop the connection.

    Returns (run_id, text so far, last seq seen, assistant message id)."""
    body = {"conversation_id": conv, "text": QUESTION, "client_message_id": uuid.uuid4().hex}
    text, seen, run_id, assistant = "", 0, "", ""
    with httpx.stream("POST", f"{base}/api/v1/chat/send", json=body, headers=headers, timeout=60) as resp:
        assert resp.status_code == 200, resp.read()
        for frame in _frames(resp):
            if frame["type"] == "message_created":
                run_id, assistant = frame["run_id"], frame["assistant_message_id"]
                continue
            seen = frame["seq"]
            if frame["type"] == "token":
                text += frame["data"]["delta"]
                tokens -= 1
                if tokens <= 0:
                    break
            assert frame["type"] not in ("done", "error"), "the answer ended before the test could interfere"
    return run_id, text, seen, assistant


def _follow(base: str, headers: dict[str, str], run_id: str, after: int) -> tuple[str, dict]:
    """Resume a run with Last-Event-ID; returns (text of the resumed part, terminal frame)."""
    hdrs = {**headers, "Last-Event-ID": f"{run_id}:{after}"}
    text = ""
    with httpx.stream("GET", f"{base}/api/v1/chat/runs/{run_id}/stream", headers=hdrs, timeout=90) as resp:
        assert resp.status_code == 200, resp.read()
        for frame in _frames(resp):
            assert frame["seq"] > after
            if frame["type"] == "token":
                text += frame["data"]["delta"]
            if frame["type"] in ("done", "error"):
                return text, frame
    raise AssertionError("the stream ended without done or error")


def _assistant(base: str, headers: dict[str, str], conv: str, message_id: str) -> dict:
    resp = httpx.get(f"{base}/api/v1/chat/conversations/{conv}/messages", headers=headers, timeout=30)
    assert resp.status_code == 200, resp.text
    return next(m for m in resp.json()["messages"] if m["id"] == message_id)


def _wait_until(check, timeout_s: float, step: float = 0.25):
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


def test_a_live_run_started_on_one_instance_streams_to_done_on_the_other(stack: Cluster) -> None:
    a, b = stack.instances
    headers = _login(a.url)
    conv = _conversation(a.url, headers)
    run_id, head, seen, assistant = _start(a.url, headers, conv, tokens=3)

    # B has never seen this run: it replays the rest from Redis and follows A's writes live.
    tail, terminal = _follow(b.url, headers, run_id, seen)

    assert terminal["type"] == "done", terminal
    assert head + tail == terminal["data"]["final_text"]  # nothing lost, nothing twice
    saved = _assistant(b.url, headers, conv, assistant)
    assert saved["status"] == "complete" and saved["content"] == head + tail


def test_resume_and_cancel_through_the_balancer_land_anywhere(stack: Cluster) -> None:
    headers = _login(stack.url)
    conv = _conversation(stack.url, headers)
    run_id, head, seen, assistant = _start(stack.url, headers, conv, tokens=2)
    # Round robin: consecutive requests alternate instances, so one of these lands on the
    # instance that does not drive the run.
    resp = httpx.post(f"{stack.url}/api/v1/chat/runs/{run_id}/cancel", headers=headers, timeout=30)
    assert resp.status_code == 200 and resp.json()["cancelled"] is True, resp.text
    tail, terminal = _follow(stack.url, headers, run_id, seen)
    assert terminal["type"] == "error" and terminal["data"]["code"] == "cancelled"
    saved = _assistant(stack.url, headers, conv, assistant)
    assert saved["status"] == "cancelled" and saved["content"].startswith(head)
    conv_state = httpx.get(f"{stack.url}/api/v1/chat/conversations/{conv}", headers=headers, timeout=30).json()
    assert conv_state["active_run_id"] is None


def test_one_run_per_conversation_holds_across_instances(stack: Cluster) -> None:
    a, b = stack.instances
    headers = _login(a.url)
    conv = _conversation(a.url, headers)
    run_id, *_ = _start(a.url, headers, conv, tokens=1)
    body = {"conversation_id": conv, "text": "And my cash?"}
    resp = httpx.post(f"{b.url}/api/v1/chat/send", json=body, headers=headers, timeout=30)
    assert resp.status_code == 409
    assert resp.json()["error"]["details"]["active_run_id"] == run_id
    listed = httpx.get(f"{b.url}/api/v1/chat/conversations/{conv}", headers=headers, timeout=30).json()
    assert listed["active_run_id"] == run_id  # B knows which run is writing, though A drives it
    httpx.post(f"{b.url}/api/v1/chat/runs/{run_id}/cancel", headers=headers, timeout=30)


def test_a_killed_owner_s_run_is_interrupted_by_the_survivor_and_the_conversation_unlocks(stack: Cluster) -> None:
    a, b = stack.instances
    headers = _login(b.url)
    conv = _conversation(b.url, headers)
    run_id, head, seen, assistant = _start(a.url, headers, conv, tokens=3)
    killed_at = time.monotonic()
    a.kill()
    try:
        # A follower on the survivor ends cleanly with "interrupted", not a hang.
        tail, terminal = _follow(b.url, headers, run_id, seen)
        closed_after = time.monotonic() - killed_at
        assert terminal["type"] == "error" and terminal["data"]["code"] == "interrupted"
        assert closed_after < 15, f"closed {closed_after:.1f} s after the kill"
        saved = _assistant(b.url, headers, conv, assistant)
        assert saved["status"] == "interrupted"
        assert saved["content"] == head + tail and saved["content"].startswith(head) and head  # partial kept
        resp = httpx.post(
            f"{b.url}/api/v1/chat/send",
            json={"conversation_id": conv, "text": "Try again"},
            headers=headers,
            timeout=60,
        )
        assert resp.status_code == 200  # not 409: the conversation is unlocked
        assert [f for f in resp.text.split("\n\n") if "event: done" in f]
    finally:
        a.start()

    # A restarted instance does not touch runs whose lease is alive (B's run here).
    conv2 = _conversation(b.url, headers)
    run2, _, seen2, assistant2 = _start(b.url, headers, conv2, tokens=2)
    a.kill()
    a.start()
    _, terminal2 = _follow(b.url, headers, run2, seen2)
    assert terminal2["type"] == "done"
    assert _assistant(b.url, headers, conv2, assistant2)["status"] == "complete"


def test_sigterm_drains_readyz_503_no_new_runs_and_in_flight_answers_finish(stack: Cluster) -> None:
    a, b = stack.instances
    headers = _login(b.url)
    conv = _conversation(b.url, headers)
    other = _conversation(b.url, headers)
    run_id, head, seen, assistant = _start(a.url, headers, conv, tokens=2)
    assert a.proc is not None
    a.proc.popen.terminate()  # SIGTERM
    try:
        ready = _wait_until(lambda: httpx.get(f"{a.url}/readyz", timeout=5).status_code == 503, 10, 0.05)
        assert ready, "readyz did not turn 503 while draining"
        assert httpx.get(f"{a.url}/readyz", timeout=5).json()["checks"]["runs"] == "draining"
        refused = httpx.post(
            f"{a.url}/api/v1/chat/send", json={"conversation_id": other, "text": "hi"}, headers=headers, timeout=30
        )
        assert refused.status_code == 503 and "Retry-After" in refused.headers
        tail, terminal = _follow(b.url, headers, run_id, seen)  # the in-flight answer finishes
        assert terminal["type"] == "done" and head + tail == terminal["data"]["final_text"]
        a.proc.popen.wait(timeout=60)
        assert _assistant(b.url, headers, conv, assistant)["status"] == "complete"
    finally:
        a.proc.stop()
        a.start()
