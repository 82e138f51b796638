"""Runs outlive requests: a run manager owns each run, writing agent events to an event log."""
