"""Count the database writes a piece of work makes, per table and per owner (the module that wrote).

Listens to SQLAlchemy's ``before_cursor_execute`` on the real engine (no mocks): every INSERT,
UPDATE and DELETE is recorded with its table and the first of our modules on the call stack
that issued it, so a test can show that each row of a run has exactly one writer.
"""

from __future__ import annotations

import re
import traceback
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import greenlet
from sqlalchemy import event

WRITE = re.compile(r"^\s*(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+\"?(\w+)\"?", re.IGNORECASE)
OWNERS = ("runs/manager.py", "store/chatkit_store.py", "chat/conversations.py", "telemetry/", "rollout/", "auth/")


@dataclass
class Writes:
    rows: list[tuple[str, str, str]] = field(default_factory=list)  # (verb, table, owner)

    def count(self, table: str | None = None, verb: str | None = None, owner: str | None = None) -> int:
        return sum(
            1
            for v, t, o in self.rows
            if (table is None or t == table) and (verb is None or v == verb) and (owner is None or o == owner)
        )

    def owners(self, table: str) -> set[str]:
        return {o for _v, t, o in self.rows if t == table}

    def summary(self) -> Counter[tuple[str, str, str]]:
        return Counter(self.rows)


def _awaiting_files() -> list[str]:
    """Files on the stack of the code that issued the statement, outermost first.

    SQLAlchemy's async layer runs the driver in a greenlet whose own stack ends at
    ``greenlet_spawn``; the awaiting coroutines (ours) are on the parent greenlet's stack.
    """
    files = [f.filename for f in traceback.extract_stack()]
    parent = greenlet.getcurrent().parent
    if parent is not None and parent.gr_frame is not None:
        files = [f.filename for f in traceback.extract_stack(parent.gr_frame)] + files
    return files


def _owner() -> str:
    """The innermost of our modules that is writing (e.g. the store, even when the SDK called it)."""
    for path in reversed(_awaiting_files()):
        path = path.replace("\\", "/")
        if "/sigmachat/" not in path:
            continue
        for owner in OWNERS:
            if owner in path:
                return owner.rstrip("/")
    return "other"


@contextmanager
def count_writes(db) -> Iterator[Writes]:
    """Record writes made through ``db`` (a sigmachat Database) while the block runs."""
    writes = Writes()

    def before(conn, cursor, statement, parameters, context, executemany):  # SQLAlchemy's listener signature
        match = WRITE.match(statement)
        if match:
            verb = match.group(1).split()[0].upper()
            rows = len(parameters) if executemany and isinstance(parameters, list | tuple) else 1
            writes.rows.extend([(verb, match.group(2).lower(), _owner())] * rows)

    engine = db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", before)
    try:
        yield writes
    finally:
        event.remove(engine, "before_cursor_execute", before)
