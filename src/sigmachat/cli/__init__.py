"""The ``sigmachat`` command line (Typer)."""
