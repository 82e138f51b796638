"""Conversations and messages: the one history both chat paths read and write."""
