"""The API tests again, on PostgreSQL (see conftest.py): auth, portfolios, chat send/resume/cancel,
isolation between users, ChatKit over HTTP."""

import pytest

from tests.api.test_portfolios_api import *
from tests.api.test_smoke import *
from tests.auth.test_auth_api import *
from tests.chat.test_isolation import *
from tests.chat.test_send_api import *
from tests.chatkit.test_http import *

pytestmark = pytest.mark.postgres
