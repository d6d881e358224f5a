"""The only package that touches Kafka, Faust or the embedded broker.

Everything here is I/O around the pure core (`geofence`, `alerts`): it decodes records, calls the
core with time as a parameter, and sends what the core decided. Decisions never live here.
"""
