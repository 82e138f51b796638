"""Portfolios: ownership-scoped access and valuation of positions."""
