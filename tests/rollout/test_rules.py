"""Rule precedence: kill switch, allowlists, denylist, percentage, default (first match wins)."""

from __future__ import annotations

from sigmachat.rollout.rules import FlagState, bucket, decide

ALICE = "alice@example.com"
# Buckets of these ids (see test_bucketing): "42" → 17, "user-1" → 62.
LOW, HIGH = "42", "user-1"


def test_kill_switch_beats_everything():
    state = FlagState(kill_switch=True, percent=100, allow_users=(ALICE,), allow_portfolios=("p1",), default="chatkit")
    d = decide(state, LOW, email=ALICE, portfolio_id="p1")
    assert (d.variant, d.rule) == ("responses", "kill_switch")


def test_allowlists_beat_denylist_and_percentage():
    state = FlagState(allow_users=(ALICE,), deny_users=(ALICE,), percent=0)
    assert (decide(state, HIGH, email="Alice@Example.com").variant, decide(state, HIGH, email=ALICE).rule) == (
        "chatkit",
        "allow_user",
    )
    state = FlagState(allow_portfolios=("p1",), deny_users=(ALICE,))
    d = decide(state, HIGH, email=ALICE, portfolio_id="p1")
    assert (d.variant, d.rule) == ("chatkit", "allow_portfolio")


def test_denylist_beats_percentage_and_default():
    state = FlagState(deny_users=(ALICE,), percent=100, default="chatkit")
    d = decide(state, LOW, email=ALICE)
    assert (d.variant, d.rule) == ("responses", "deny_user")


def test_percentage_then_default():
    assert bucket(LOW) == 17 and bucket(HIGH) == 62
    state = FlagState(percent=17)
    assert (decide(state, LOW).variant, decide(state, LOW).rule, decide(state, LOW).bucket) == (
        "chatkit",
        "percentage",
        17,
    )
    assert (decide(state, HIGH).variant, decide(state, HIGH).rule) == ("responses", "default")
    assert decide(FlagState(percent=16), LOW).variant == "responses"
    assert decide(FlagState(percent=17, default="chatkit"), HIGH).variant == "chatkit"


def test_no_user_gets_the_default():
    assert decide(FlagState(percent=100, default="responses"), None).variant == "responses"
