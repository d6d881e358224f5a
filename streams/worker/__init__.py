"""The stream worker (streams/worker/assembly.py says how its parts fit)."""

from streams.worker.assembly import Worker

__all__ = ["Worker"]
