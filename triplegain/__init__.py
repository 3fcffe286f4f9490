"""TripleGain: the trading domain in plain Python (no Prefect): models, agents, risk, broker, storage."""

__version__ = "0.1.0"
