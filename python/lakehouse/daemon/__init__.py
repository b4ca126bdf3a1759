"""The agent: the inbox watcher and the ingest schedules, run in the process that owns
the data directory (`lakehouse watch`, or the gateway when `[daemon]` enables them)."""
