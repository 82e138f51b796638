"""The SQLite driver: one trip to aiosqlite's thread per statement, and otherwise a DBAPI cursor
like SQLAlchemy's own (rows, row counts, last row ids, errors, transactions)."""

from __future__ import annotations

import aiosqlite
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from sigmachat.db.session import create_engine
from sigmachat.settings import Settings

meta = sa.MetaData()
things = sa.Table(
    "things",
    meta,
    sa.Column("n", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String, unique=True, nullable=False),
)


@pytest.fixture
async def engine(tmp_path):
    engine = create_engine(Settings(_env_file=None, database_url=f"sqlite+aiosqlite:///{tmp_path / 'd.db'}"))
    async with engine.begin() as conn:
        await conn.run_sync(meta.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
def trips(monkeypatch):
    """Counts calls that cross to aiosqlite's worker thread."""
    count = [0]
    original = aiosqlite.Connection._execute

    async def counted(self, fn, *args, **kwargs):
        count[0] += 1
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return count


async def test_a_statement_is_one_trip_to_the_sqlite_thread(engine, trips):
    async with engine.connect() as conn:
        await conn.execute(sa.select(1))  # the connection's first use (begin) out of the count
        before = trips[0]
        rows = (await conn.execute(sa.select(things.c.n, things.c.name))).all()
        assert rows == []
        assert trips[0] - before == 1  # SQLAlchemy's own adapter: cursor, execute, fetchall, close = 4


async def test_ending_a_read_only_transaction_takes_no_trip_and_a_write_is_still_rolled_back(engine, trips):
    async with engine.connect() as conn:
        await conn.execute(sa.select(1))
        before = trips[0]
        await conn.rollback()  # sqlite3 has no transaction open after a select: nothing to do
        assert trips[0] == before
        await conn.execute(things.insert().values(name="gone"))
        await conn.rollback()
        assert trips[0] > before + 1  # the insert and its rollback
        assert (await conn.execute(sa.select(sa.func.count()).select_from(things))).scalar_one() == 0


async def test_rows_row_counts_and_last_row_ids_are_those_of_sqlite(engine):
    async with engine.begin() as conn:
        first = await conn.execute(things.insert().values(name="a"))
        assert first.inserted_primary_key == (1,)  # from the cursor's lastrowid
        await conn.execute(things.insert(), [{"name": "b"}, {"name": "c"}, {"name": "d"}])  # executemany
        changed = await conn.execute(things.update().where(things.c.n > 2).values(name=things.c.name + "!"))
        assert changed.rowcount == 2
        result = await conn.execute(sa.select(things).order_by(things.c.n))
        assert list(result.keys()) == ["n", "name"]  # from the description
        assert [tuple(r) for r in result] == [(1, "a"), (2, "b"), (3, "c!"), (4, "d!")]
        assert (await conn.execute(sa.select(things.c.name).where(things.c.n == 9))).scalar_one_or_none() is None


async def test_errors_and_rollbacks_behave_as_before(engine):
    async with engine.begin() as conn:
        await conn.execute(things.insert().values(name="a"))
    with pytest.raises(IntegrityError):
        async with engine.begin() as conn:
            await conn.execute(things.insert().values(name="b"))
            await conn.execute(things.insert().values(name="a"))  # unique violation: the block rolls back
    async with engine.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(things))).scalar_one() == 1
        with pytest.raises(sa.exc.OperationalError):
            await conn.execute(sa.text("SELECT * FROM no_such_table"))


async def test_server_side_cursors_still_stream(engine):
    async with engine.begin() as conn:
        await conn.execute(things.insert(), [{"name": f"t{i}"} for i in range(50)])
    async with engine.connect() as conn:
        result = await conn.stream(sa.select(things.c.n).order_by(things.c.n))
        seen = [row.n async for row in result]
    assert seen == list(range(1, 51))
