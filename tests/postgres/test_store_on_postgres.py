"""The store tests again, on PostgreSQL (see conftest.py)."""

import pytest

from tests.store.test_chatkit_store import *
from tests.store.test_one_history import *

pytestmark = pytest.mark.postgres
