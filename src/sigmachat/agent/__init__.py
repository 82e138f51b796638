"""The agent: typed agent events (the narrow waist), instructions, run error taxonomy."""
