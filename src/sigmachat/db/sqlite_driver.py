"""SQLAlchemy's aiosqlite adapter with one trip to the SQLite thread per statement.

aiosqlite runs every call on a worker thread of its own. SQLAlchemy's adapter makes four
such calls per statement (open a cursor, execute, fetch the rows, close the cursor), and each
costs a thread switch and an event-loop wake-up: about 110 µs of CPU on a small machine, most
of a simple statement's cost. A streamed answer runs about twenty statements, and on SQLite
they were a third of the app's CPU per streamed token.

Here a statement is one call: the worker opens a cursor, executes, fetches and closes, and
hands back the rows with the description, row count and last row id, which this cursor then
serves like any buffered cursor. Transactions, isolation, errors and server-side cursors are
SQLAlchemy's own, unchanged: only the non-streaming cursor is replaced. Used for
``sqlite+aiosqlite`` URLs through ``create_async_engine(module=...)``.
"""

from __future__ import annotations

import collections
import sqlite3
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util.concurrency import await_

_Result = tuple[Any, list[Any], int, int | None]


def _run(connection: aiosqlite.Connection, operation: str, parameters: Any, many: bool) -> _Result:
    """On the SQLite thread: the whole statement, rows included, in one step."""
    cursor = connection._conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        return description, cursor.fetchall() if description else [], cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A buffered cursor whose statements each take one trip to the SQLite thread."""

    __slots__ = ("_description", "_rowcount", "_lastrowid", "_arraysize")

    _awaitable_cursor_close = False

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:  # no cursor of aiosqlite's
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._arraysize = 1

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> Any:
        return self._lastrowid

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    async def _async_soft_close(self) -> None:  # nothing is open between statements
        return None

    def close(self) -> None:
        self._rows.clear()

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        try:
            return await_(self._run_async(operation, parameters, False))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        try:
            return await_(self._run_async(operation, seq_of_parameters, True))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    async def _run_async(self, operation: Any, parameters: Any, many: bool) -> None:
        async with self._adapt_connection._execute_mutex:
            result: _Result = await self._connection._execute(_run, self._connection, operation, parameters, many)
        self._description, rows, self._rowcount, self._lastrowid = result
        self._rows = collections.deque(rows)


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls: type[AsyncAdapt_aiosqlite_cursor] = OneTripCursor

    def _idle(self) -> bool:
        # Read on the loop's thread while the SQLite thread has nothing of ours to run (the
        # pool returns a connection only between statements); sqlite3 reads its autocommit flag.
        conn = self._connection._connection
        return conn is not None and not conn.in_transaction

    def rollback(self) -> None:
        # Every pooled connection is rolled back when it is returned, most after reads only,
        # when sqlite3's rollback does nothing: no trip for nothing.
        if not self._idle():
            super().rollback()

    def commit(self) -> None:
        if not self._idle():  # sqlite3's commit, too, does nothing outside a transaction
            super().commit()


class OneTripAiosqlite(AsyncAdapt_aiosqlite_dbapi):
    """The DBAPI module to give ``create_async_engine(module=...)`` for ``sqlite+aiosqlite``."""

    def __init__(self) -> None:
        super().__init__(aiosqlite, sqlite3)

    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        adapted = super().connect(*arg, **kw)
        return OneTripConnection(self, adapted._connection)
