"""`banwatch report`: the programme's effect and response report, from a source of records.

`sources` reads records (a replay's JSON lines today; the record store once it lands),
`render` writes the HTML page, `command` is the subcommand. The figures themselves are pure
and live in `alerts.report`.
"""
