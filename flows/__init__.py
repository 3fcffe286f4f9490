"""Prefect flows: the trading cycle (and later its siblings), the deployments and the CLI."""
