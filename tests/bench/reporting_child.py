"""Targets for run_reporting_process (importable by a spawned interpreter)."""

from __future__ import annotations

import os
from typing import Any


def reports(n: int, queue: Any) -> None:
    for i in range(n):
        queue.put(("advance", i))
    queue.put(("result", n * 10))


def fails(queue: Any) -> None:
    queue.put(("error", "boom"))


def dies(queue: Any) -> None:
    os._exit(3)
