"""The store tests again, on PostgreSQL (see conftest.py)."""

from tests.store.test_chatkit_store import *  # noqa: F401,F403
from tests.store.test_one_history import *  # noqa: F401,F403

import pytest  # noqa: E402

pytestmark = pytest.mark.postgres
