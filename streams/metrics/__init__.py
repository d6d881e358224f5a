"""Prometheus metrics: the contract's series and their server (prometheus.py), and how a worker
feeds them (worker.py)."""
