"""Pure alert logic: priorities, alert lifecycle, dedup, escalation, patrol assignment, tasks.

Never imports Kafka, Faust, metrics or the environment, and never reads the clock (except the
console, in `alerts/console/`, which is a consumer of the alert stream).
"""
