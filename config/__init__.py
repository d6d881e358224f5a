"""Settings and policy: models and their loading, nothing else (no I/O beyond reading files)."""
