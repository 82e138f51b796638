"""``sigmachat eval``: the analyst evaluation set, run on both engines against any model."""
