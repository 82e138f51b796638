"""The offline analyst model: the product's no-key mode, reached through the ordinary AsyncOpenAI client.

- :mod:`~sigmachat.offline.intents`: which tools a question needs;
- :mod:`~sigmachat.offline.answers`: markdown answers composed from tool envelopes;
- :mod:`~sigmachat.offline.analyst`: one model turn from a stateless Responses request;
- :mod:`~sigmachat.offline.protocol`: the Responses API events and response object;
- :mod:`~sigmachat.offline.server`: the HTTP semantics, pacing and the fault hook;
- :mod:`~sigmachat.offline.transport`: the in-process httpx2 transport (no port).
"""

from sigmachat.offline.analyst import OfflineAnalyst, parse_conversation
from sigmachat.offline.protocol import OFFLINE_METADATA, ResponseBuilder, ToolCallPlan, Turn
from sigmachat.offline.server import OfflineModelServer, Pacing
from sigmachat.offline.transport import OFFLINE_BASE_URL, OfflineTransport, offline_http_client

__all__ = [
    "OFFLINE_BASE_URL",
    "OFFLINE_METADATA",
    "OfflineAnalyst",
    "OfflineModelServer",
    "OfflineTransport",
    "Pacing",
    "ResponseBuilder",
    "ToolCallPlan",
    "Turn",
    "offline_http_client",
    "parse_conversation",
]
