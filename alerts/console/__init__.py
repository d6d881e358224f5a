"""The dispatch console: a web page and HTTP API over the alert and task streams.

It is a consumer, outside the pure core: it may import aiohttp, never Kafka. It is fed records
(`store.Store`) and given a `publish` callback for what it writes back (AlertActions, audit
records); `streams/console_service.py` connects both to Kafka. It never logs coordinates, free
text or tokens.
"""
