"""Wire protocols: agent events encoded for the legacy SSE API and for ChatKit."""
