"""The dispatch console: a web page and HTTP API over the alert and task streams.

It is a consumer, outside the pure core. The web application (app, api, tasks, lifecycle,
stream, context, store, auth, outlines) may import aiohttp, never Kafka: it is fed records
(`store.Store`) and given a `publish` callback for what it writes back (AlertActions,
TaskUpdates, audit records);
`streams/console/service.py` connects both to Kafka (an import-linter contract keeps it so).
It never logs coordinates, free text or tokens.
"""
