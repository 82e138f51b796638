"""ChatKit test helpers: request bodies, frame validation, and a runtime over a fake engine."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from chatkit.types import ThreadStreamEvent
from pydantic import TypeAdapter

STREAM_EVENT: TypeAdapter[ThreadStreamEvent] = TypeAdapter(ThreadStreamEvent)


def user_input(text: str, **extra: Any) -> dict[str, Any]:
    return {"content": [{"type": "input_text", "text": text}], "attachments": [], "inference_options": {}, **extra}


def create(text: str = "What is my largest position?", **extra: Any) -> bytes:
    return json.dumps({"type": "threads.create", "params": {"input": user_input(text, **extra)}}).encode()


def add_message(thread_id: str, text: str, **extra: Any) -> bytes:
    return json.dumps(
        {"type": "threads.add_user_message", "params": {"thread_id": thread_id, "input": user_input(text, **extra)}}
    ).encode()


def req(type_: str, **params: Any) -> bytes:
    return json.dumps({"type": type_, "params": params}).encode()


@dataclass
class Frame:
    id: str | None
    event: Any  # a validated ThreadStreamEvent

    @property
    def type(self) -> str:
        return self.event.type


def validate(data: str) -> Any:
    """Every frame must be a ThreadStreamEvent, exactly (a JSON round trip through the SDK's type)."""
    event = STREAM_EVENT.validate_json(data)
    assert json.loads(data)["type"] == event.type
    return event


def parse_sse(body: str) -> list[Frame]:
    """Frames of an SSE body (as served over HTTP); comment lines (pings) are skipped."""
    frames = []
    for block in body.replace("\r\n", "\n").split("\n\n"):
        lines = [ln for ln in block.split("\n") if ln and not ln.startswith(":")]
        if not lines:
            continue
        data = "\n".join(ln[len("data: ") :] for ln in lines if ln.startswith("data: "))
        sse_id = next((ln[len("id: ") :] for ln in lines if ln.startswith("id: ")), None)
        frames.append(Frame(sse_id, validate(data)))
    return frames


def compact(frames: list[Frame]) -> list[str]:
    """Event types, with the item type for item events and runs of deltas collapsed."""
    out: list[str] = []
    for f in frames:
        e = f.event
        name = e.type
        if name in ("thread.item.added", "thread.item.done"):
            name += f":{e.item.type}"
        elif name == "thread.item.updated":
            name += f":{e.update.type}"
        elif name == "client_effect":
            name += f":{e.name}"
        if out and out[-1] == name and name.endswith("text_delta"):
            continue
        out.append(name)
    return out
