"""Prefect tasks: thin wrappers that give domain functions names, retries and timeouts."""
