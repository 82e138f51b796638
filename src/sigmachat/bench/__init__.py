"""Benchmarks and the soak test (``sigmachat bench``, ``sigmachat soak``).

One word per module: ``procs`` (the simulator and app processes), ``clients`` (the three ways
to read an answer), ``loadgen`` (the load generator process), ``integrity`` (was the text
delivered exactly), ``stats`` (percentiles), ``microbench`` (tools and store), ``report``
and ``chart`` (tables, JSON, HTML/SVG, docs/benchmarks.md), ``runner`` (ties them together)
and ``soak`` (disconnects, resumes, cancels, and the accounting of every run).
"""
