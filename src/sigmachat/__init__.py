"""SigmaSight Chat: the AI analyst chat of the SigmaSight portfolio-analytics product."""

__version__ = "0.1.0"
