"""Pure alert logic: priorities, alert lifecycle, dedup, escalation, patrol assignment, tasks.

Never imports Kafka, Faust, the web, metrics or the environment, and never reads the clock (the
dispatch console, a consumer of the alert stream, lives in `streams/console/`).
"""
