"""Did a stream deliver the answer exactly? Nothing dropped, duplicated or reordered.

The offline analyst behind the simulator is deterministic, so each (user, question) has one
expected answer, taken once from the direct path before the measurement. A stream is intact
when the text it delivered delta by delta equals the expected text, equals the final text the
stream itself reports (``done`` / ``thread.item.done`` / ``response.completed``), and its
sequence numbers had no gaps. Against a real model there is no expected text; the other two
checks still apply.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sigmachat.offline.protocol import split_tokens

OK = "ok"
DROPPED = "dropped"
DUPLICATED = "duplicated"
REORDERED = "reordered"
DIFFERENT = "different"
SEQ_GAP = "sequence_gap"
FINAL_MISMATCH = "final_text_mismatch"
# The stream delivered its own final text intact, but that answer is not the expected one: the
# answer itself changed upstream of the streaming (e.g. a tool failed or timed out under load).
ANSWER_CHANGED = "answer_changed"


def classify(received: str, expected: str) -> str:
    """How ``received`` differs from ``expected``, compared as token multisets.

    ``reordered``: the same tokens in another order; ``dropped``: a strict subset;
    ``duplicated``: a strict superset; ``different``: anything else.
    """
    if received == expected:
        return OK
    got, want = Counter(split_tokens(received)), Counter(split_tokens(expected))
    if got == want:
        return REORDERED
    if not (got - want) and (want - got):
        return DROPPED
    if not (want - got) and (got - want):
        return DUPLICATED
    return DIFFERENT


@dataclass(frozen=True, slots=True)
class Verdict:
    intact: bool
    problem: str  # OK or the first problem found

    @classmethod
    def of(cls, *, text: str, final_text: str | None, seq_ok: bool, expected: str | None) -> Verdict:
        if expected is not None:
            kind = classify(text, expected)
            if kind == DIFFERENT and final_text == text and seq_ok:
                return cls(False, ANSWER_CHANGED)
            if kind != OK:
                return cls(False, kind)
        if final_text is not None and final_text != text:
            return cls(False, FINAL_MISMATCH)
        if not seq_ok:
            return cls(False, SEQ_GAP)
        return cls(True, OK)


def check_stream(result, expected: str | None) -> Verdict:
    """The verdict on a finished :class:`~sigmachat.bench.clients.StreamResult`."""
    return Verdict.of(text=result.text, final_text=result.final_text, seq_ok=result.seq_ok, expected=expected)
