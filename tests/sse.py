"""Reading server-sent events in tests (the app writes them with sse-starlette)."""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass
class Frame:
    event: str | None
    id: str | None
    data: dict | str | None
    comment: bool = False


def parse(text: str) -> list[Frame]:
    frames = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        if not block.strip():
            continue
        event = fid = None
        data_lines = []
        only_comments = True
        for line in block.split("\n"):
            if line.startswith(":"):
                continue
            only_comments = False
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                event = value
            elif field == "id":
                fid = value
            elif field == "data":
                data_lines.append(value)
        if only_comments:
            frames.append(Frame(None, None, None, comment=True))
            continue
        raw = "\n".join(data_lines)
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = raw
        frames.append(Frame(event, fid, data))
    return [f for f in frames if not f.comment]
