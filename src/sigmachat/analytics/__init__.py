"""Portfolio analytics: pure computations over pandas/numpy, no database and no I/O.

Each module is one concept; the tool registry (:mod:`sigmachat.tools`) loads the data and
turns these results into tool envelopes.

- :mod:`.returns`: daily returns, windows and annualised volatility
- :mod:`.regression`: ordinary least squares (numpy ``lstsq``) and vectorised betas
- :mod:`.options`: Black-Scholes greeks and implied volatility for listed options
- :mod:`.book`: the portfolio as one row per symbol with delta-adjusted exposure
- :mod:`.exposure`: long / short / gross / net exposure and sector breakdowns
- :mod:`.concentration`: HHI, effective number of positions, top-N weights
- :mod:`.risk`: covariance risk, contributions to risk, realised volatility, correlations
- :mod:`.factors`: betas to the factor ETFs from a regression on daily returns
- :mod:`.stress`: scenario shocks with full revaluation of options
- :mod:`.quotes`: last close, day change, 52-week range and daily movers
- :mod:`.history`: price-history summaries and the NAV back-cast
- :mod:`.data_quality`: missing, stale and short price histories
- :mod:`.bench`: the tool benchmark (timings of every tool on a demo portfolio)
"""
