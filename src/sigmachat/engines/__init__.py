"""Engines turn a provider's stream into agent events: ResponsesEngine and AgentsEngine."""
