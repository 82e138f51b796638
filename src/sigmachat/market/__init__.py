"""Market data: the security master, the demo price generator, price storage and CSV import."""
