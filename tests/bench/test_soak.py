"""The soak's accounting: lost, stuck and disagreeing runs are found in the database."""

from __future__ import annotations

import json
import random
import sqlite3

import pytest

from sigmachat.bench.soak import RunRecord, SoakOptions, _choose, _is_server_failure, account, summarize


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "soak.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE messages (id TEXT, role TEXT, run_id TEXT, conversation_id TEXT, status TEXT, content TEXT, "
            "error TEXT)"
        )
    return path


def _add(path, rows):
    with sqlite3.connect(path) as conn:
        conn.executemany("INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?)", rows)


def _rec(run_id, outcome, *, action="read", path="responses", before="", after="", final=None, disconnected=False):
    r = RunRecord(path, action, "u@x", "q", conversation_id="c", run_id=run_id, outcome=outcome)
    r.text_before, r.text_after, r.final_text, r.disconnected = before, after, final, disconnected
    return r


def test_a_clean_soak_accounts_for_every_run(db):
    _add(db, [
        ("u1", "user", "r1", "c1", "complete", "q", None),
        ("a1", "assistant", "r1", "c1", "complete", "Hello world", None),
        ("u2", "user", "r2", "c2", "complete", "q", None),
        ("a2", "assistant", "r2", "c2", "cancelled", "Hel", json.dumps({"code": "cancelled"})),
        ("u3", "user", "r3", "c3", "complete", "q", None),
        ("a3", "assistant", "r3", "c3", "complete", "Resumed text", None),
    ])  # fmt: skip
    records = [
        _rec("r1", "complete", before="Hello world", final="Hello world"),
        _rec("r2", "cancelled", action="cancel", before="Hel", final="Hel", disconnected=True),
        _rec(
            "r3",
            "complete",
            action="disconnect_resume",
            before="Resu",
            after="med text",
            final="Resumed text",
            disconnected=True,
        ),
    ]
    out = account(db, records)
    assert (out["lost"], out["stuck"], out["problem_count"]) == (0, 0, 0)
    assert out["statuses"] == {"complete": 2, "cancelled": 1}
    assert (out["resumed"], out["resumed_intact"]) == (1, 1)
    summary = summarize(records, out, SoakOptions(), {})
    assert summary["ok"] and summary["accounted"] and summary["runs_started"] == 3


def test_lost_stuck_and_broken_resumes_are_reported(db):
    _add(db, [
        ("u1", "user", "r1", "c1", "complete", "q", None),  # no answer at all: lost
        ("u2", "user", "r2", "c2", "complete", "q", None),
        ("a2", "assistant", "r2", "c2", "streaming", "", None),  # stuck
        ("u3", "user", "r3", "c3", "complete", "q", None),
        ("a3", "assistant", "r3", "c3", "complete", "Resumed text", None),
        ("u4", "user", "r4", "c4", "complete", "q", None), ("a4", "assistant", "r4", "c4", "failed", "", None),
    ])  # fmt: skip
    records = [
        # A resume that duplicated a token.
        _rec(
            "r3",
            "complete",
            action="disconnect_resume",
            before="Resumed",
            after="d text",
            final="Resumed text",
            disconnected=True,
        ),
        # The client saw the answer complete, the database says failed.
        _rec("r4", "complete", before="x", final="x"),
    ]
    out = account(db, records)
    assert out["lost"] == 1 and out["stuck"] == 1
    assert (out["resumed"], out["resumed_intact"]) == (1, 0)
    problems = {p["problem"] for p in out["problems"]}
    assert "text received (before + after any resume) differs from the final text" in problems
    assert "status failed, client saw complete" in problems
    assert not summarize(records, out, SoakOptions(), {})["ok"]


def test_server_side_failures_make_a_soak_unhealthy(db):
    records = [_rec(None, "rejected:http_500"), _rec(None, "rejected:http_409"), _rec(None, "client_error:ReadError")]
    summary = summarize(records, account(db, records), SoakOptions(), {})
    assert summary["accounted"] and summary["server_failures"] == 2 and not summary["ok"]
    assert _is_server_failure("rejected:conversation_http_503") and not _is_server_failure("rejected:http_429")


def test_choices_cover_every_action_and_respect_the_paths():
    rng = random.Random(1)
    both = {_choose(rng, SoakOptions()) for _ in range(2000)}
    assert both == {
        ("responses", "read"), ("responses", "disconnect_resume"), ("responses", "cancel"),
        ("chatkit", "read"), ("chatkit", "disconnect"), ("chatkit", "disconnect_resume"),
    }  # fmt: skip
    only = {_choose(rng, SoakOptions(paths=("responses",)))[0] for _ in range(200)}
    assert only == {"responses"}
