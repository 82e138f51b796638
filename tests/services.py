"""Real PostgreSQL, Redis and nginx for the tests (started here, stopped at the end).

Thin fixtures over ``sigmachat.bench.cluster`` (the same code ``sigmachat soak --cluster``
uses). A missing Debian package skips on a developer machine and fails in CI (``CI=true``),
like the browser tests.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sigmachat.bench.cluster import MissingTool, Postgres, start_postgres, start_redis
from sigmachat.bench.procs import ManagedProcess


def _missing(exc: MissingTool) -> None:
    if os.environ.get("CI"):
        raise exc
    pytest.skip(str(exc))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagedProcess]:
    """A redis-server for the whole session; tests use distinct key prefixes, not FLUSHALL."""
    try:
        proc = start_redis(tmp_path_factory.mktemp("redis"))
    except MissingTool as exc:
        _missing(exc)
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    try:
        pg = start_postgres(tmp_path_factory.mktemp("postgres"))
    except MissingTool as exc:
        _missing(exc)
    try:
        yield pg
    finally:
        pg.stop()


def workdir(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    return tmp_path_factory.mktemp(name)
