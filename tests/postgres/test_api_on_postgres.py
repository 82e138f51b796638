"""The API tests again, on PostgreSQL (see conftest.py): auth, portfolios, chat send/resume/cancel,
isolation between users, ChatKit over HTTP, the original frontend's chat, feedback and memory calls."""

import pytest

from tests.api.test_portfolios_api import *  # noqa: F403
from tests.api.test_smoke import *  # noqa: F403
from tests.auth.test_auth_api import *  # noqa: F403
from tests.chat.test_isolation import *  # noqa: F403
from tests.chat.test_send_api import *  # noqa: F403
from tests.chatkit.test_http import *  # noqa: F403
from tests.compat.test_feedback import *  # noqa: F403
from tests.compat.test_original_frontend import *  # noqa: F403

pytestmark = pytest.mark.postgres
