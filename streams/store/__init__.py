"""The record store: every ban version, alert revision, task revision, task update, audit record
and protected-person notification kept in a database, behind the topics (CONTRACT.md, "Contract
version 2 / The record store").

Topics are a transport with retention; this is the record system. `sink` is the consumer group
that writes it (`banwatch store`, or in-process under `banwatch up`), `restore` republishes the
bans in force to an empty embedded broker, `retention` erases personal data past
`BANWATCH_RETENTION_DAYS`, `queries` answers the console's history and audit searches.

SQLite (WAL, one file under `BANWATCH_DATA_DIR`) by default, PostgreSQL (psycopg 3) when
`BANWATCH_DATABASE_URL` names one; the schema is Alembic's (`migrations/`, applied at start).
Nothing here is imported by the decision core, and nothing here decides anything: it keeps what
the topics carried, idempotently by each record's natural key.
"""
