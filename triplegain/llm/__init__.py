"""Language models: provider adapters on the official SDKs, structured answers, failover, breakers, budget."""
