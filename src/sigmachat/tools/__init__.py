"""The agent's tools: portfolio analytics behind one registry that both chat engines call.

- :mod:`.registry`: ``ToolRegistry`` / ``build_registry`` (the engines' entry point)
- :mod:`.tool`, :mod:`.schema`: a tool's contract and its strict JSON Schema
- :mod:`.envelope`: the ``{"meta", "data", "error"}`` envelope and structure-aware truncation
- :mod:`.runtime`, :mod:`.portfolio_data`, :mod:`.market_data`: context, data loading, caches
- :mod:`.portfolio`, :mod:`.exposure`, :mod:`.risk`, :mod:`.market`: the tools, by family
"""
