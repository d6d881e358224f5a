"""Pure geometry and state for contact bans: zones, fixes, the spatial index, breach evaluation.

Never imports Kafka, Faust, the web or metrics, and never reads the clock: time is a parameter.
"""
