"""The result envelope every tool returns, its errors, and structure-aware truncation.

Envelope: ``{"meta": {...}, "data": ..., "error": null | {"type", "message", "retryable"}}``.

What the model receives is capped in characters. The cap is met by dropping *tail items of
lists* (tools order every list most important first) and recording what was dropped in
``meta``: the text is always complete, valid JSON. Serialized JSON is never sliced.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

ERROR_TYPES = ("validation_error", "not_found", "execution_error")
# How many truncated lists meta names individually (the count covers the rest).
MAX_TRUNCATION_RECORDS = 5


class ToolError(Exception):
    """A tool's expected failure; the registry turns it into the envelope's ``error``."""

    type = "execution_error"
    retryable = False

    def __init__(self, message: str, *, retryable: bool | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if retryable is not None:
            self.retryable = retryable
        self.details = details

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "message": self.message, "retryable": self.retryable}
        if self.details is not None:
            out["details"] = self.details
        return out


class ToolValidationError(ToolError):
    type = "validation_error"


class ToolNotFound(ToolError):
    type = "not_found"


class ToolExecutionError(ToolError):
    type = "execution_error"


def make_envelope(meta: dict[str, Any], data: Any = None, error: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"meta": meta, "data": data, "error": error}


def dumps(value: Any) -> str:
    """Compact JSON; ``allow_nan=False`` makes a stray NaN a bug we see, not invalid JSON we send."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


@dataclass(frozen=True, slots=True)
class Fitted:
    text: str  # the JSON given to the model, at most max_chars long
    envelope: dict[str, Any]  # the envelope that text encodes
    truncated: bool  # whether fitting dropped anything


def fit_to_budget(env: dict[str, Any], max_chars: int) -> Fitted:
    """The envelope as JSON of at most ``max_chars`` characters.

    Finds the largest ``k`` such that keeping the first ``k`` items of every list in
    ``data`` (at any depth) fits: short lists stay whole while long ones are trimmed,
    and paired lists (symbols and matrix rows) stay aligned. ``meta`` then says
    ``truncated: true``, the ``original_count`` of the longest trimmed list (unless the
    tool already set one) and, under ``truncation``, each trimmed list's path and counts.
    """
    text = dumps(env)
    if len(text) <= max_chars:
        return Fitted(text, env, False)
    longest = _longest_list(env.get("data"))
    best: tuple[str, dict[str, Any]] | None = None
    lo, hi = 0, longest - 1
    while lo <= hi:  # length grows with k, so bisect on it
        mid = (lo + hi) // 2
        candidate = _capped(env, mid, max_chars)
        if len(candidate[0]) <= max_chars:
            best, lo = candidate, mid + 1
        else:
            hi = mid - 1
    if best is None:
        best = _omitted(env, max_chars)
    return Fitted(best[0], best[1], True)


def _longest_list(node: Any) -> int:
    if isinstance(node, list):
        return max([len(node)] + [_longest_list(v) for v in node])
    if isinstance(node, dict):
        return max([0] + [_longest_list(v) for v in node.values()])
    return 0


def _cap(node: Any, k: int, path: str, cuts: list[tuple[str, int]]) -> Any:
    if isinstance(node, list):
        if len(node) > k:
            cuts.append((path, len(node)))
        return [_cap(v, k, f"{path}[{i}]", cuts) for i, v in enumerate(node[:k])]
    if isinstance(node, dict):
        return {key: _cap(v, k, f"{path}.{key}", cuts) for key, v in node.items()}
    return node


def _capped(env: dict[str, Any], k: int, max_chars: int) -> tuple[str, dict[str, Any]]:
    cuts: list[tuple[str, int]] = []
    data = _cap(env.get("data"), k, "data", cuts)
    meta = dict(env.get("meta") or {})
    meta["truncated"] = True
    if cuts and not meta.get("original_count"):
        meta["original_count"] = max(n for _, n in cuts)
    meta["truncation"] = {
        "max_chars": max_chars,
        "kept_per_list": k,
        "lists_truncated": len(cuts),
        "lists": [{"path": p, "kept": k, "original_count": n} for p, n in cuts[:MAX_TRUNCATION_RECORDS]],
    }
    out = make_envelope(meta, data, env.get("error"))
    return dumps(out), out


def _omitted(env: dict[str, Any], max_chars: int) -> tuple[str, dict[str, Any]]:
    """Last resort when even empty lists do not fit: no data, and meta says why."""
    meta = dict(env.get("meta") or {})
    meta.update(truncated=True, truncation={"max_chars": max_chars, "data_omitted": True})
    out = make_envelope(meta, None, env.get("error"))
    text = dumps(out)
    if len(text) <= max_chars:
        return text, out
    slim = {k: meta[k] for k in ("tool", "as_of", "truncated", "truncation", "duration_ms") if k in meta}
    out = make_envelope(slim, None, env.get("error"))
    return dumps(out), out
