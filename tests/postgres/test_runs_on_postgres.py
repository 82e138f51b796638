"""The run manager's batched writes again, on PostgreSQL (asyncpg's executemany; see conftest.py)."""

import pytest

from tests.runs.test_progress_saves import (
    test_no_progress_is_saved_when_the_period_is_zero,
    test_the_runs_due_are_saved_together_once_and_never_after_their_end,
)

pytestmark = pytest.mark.postgres

# Collected here, under this module's postgres mark and conftest.
__all__ = [
    "test_no_progress_is_saved_when_the_period_is_zero",
    "test_the_runs_due_are_saved_together_once_and_never_after_their_end",
]
