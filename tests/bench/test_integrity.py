"""Integrity of a stream: dropped, duplicated and reordered text, sequence gaps, final text."""

from __future__ import annotations

from sigmachat.bench.clients import StreamResult
from sigmachat.bench.integrity import (
    ANSWER_CHANGED,
    DIFFERENT,
    DROPPED,
    DUPLICATED,
    FINAL_MISMATCH,
    OK,
    REORDERED,
    SEQ_GAP,
    Verdict,
    check_stream,
    classify,
)

EXPECTED = "Your largest position is NVDA at 12.5% of NAV."


def test_classify_each_kind_of_damage():
    assert classify(EXPECTED, EXPECTED) == OK
    assert classify(EXPECTED.replace(" NVDA", ""), EXPECTED) == DROPPED
    assert classify(EXPECTED.replace(" NVDA", " NVDA NVDA"), EXPECTED) == DUPLICATED
    assert classify("Your position largest is NVDA at 12.5% of NAV.", EXPECTED) == REORDERED
    assert classify("Something else entirely.", EXPECTED) == DIFFERENT


def _stream(deltas, final=None, seq_ok=True):
    r = StreamResult("responses", "q", "u")
    for d in deltas:
        r.add_delta(d)
    r.final_text = final
    r.seq_ok = seq_ok
    return r


def test_an_intact_stream_matches_expected_final_text_and_sequence():
    deltas = ["Your", " largest", " position", " is", " NVDA", " at", " 12.5", "%", " of", " NAV", "."]
    assert "".join(deltas) == EXPECTED.replace("12.5", "12.5")
    assert check_stream(_stream(deltas, final=EXPECTED), EXPECTED) == Verdict(True, OK)


def test_a_stream_is_not_intact_when_its_final_text_or_sequence_disagrees():
    assert check_stream(_stream([EXPECTED], final=EXPECTED + "!"), EXPECTED).problem == FINAL_MISMATCH
    assert check_stream(_stream([EXPECTED], final=EXPECTED, seq_ok=False), EXPECTED).problem == SEQ_GAP
    # Without an expected text (a real model), only the stream's own consistency counts.
    assert check_stream(_stream(["a", "b"], final="ab"), None).intact
    assert check_stream(_stream(["b", "a"], final="ab"), None).problem == FINAL_MISMATCH


def test_first_difference_points_at_where_texts_part():
    from sigmachat.bench.loadgen import first_difference

    d = first_difference("The price is $10.", "The price is $12.", context=4)
    assert d["at"] == 15 and (d["got"], d["want"]) == ("s $10.", "s $12.")
    assert first_difference("abc", "abcdef")["at"] == 3


def test_an_answer_that_changed_upstream_is_told_apart_from_streaming_damage():
    # A tool that timed out under load makes the model write another answer, streamed intact.
    other = "I could not compute current quotes: get_current_quotes took too long."
    assert check_stream(_stream([other], final=other), EXPECTED).problem == ANSWER_CHANGED
    assert check_stream(_stream([other], final=other + "x"), EXPECTED).problem == DIFFERENT
