"""The detectors of one ban, one module each.

Each has one entry point `(state, ctx, input) -> outputs appended to ctx.out` (the signal
detector has three: a fix seen, the timeout, the rise to priority 1), isolated by the caller
(alerts/fixpath.py on the fix path, the engine for incidents and timers): a detector that
raises is logged and named in a dead letter, and the others still decide.

- plausibility: rule 3 (implausible jumps) and rule 5's thin fix history (bookkeeping);
- zone: zone_breach; proximity: proximity_breach; approach: approach (rule 4);
- late: late_evidence from an out-of-order fix; signal: signal_lost;
- incidents: one alert per matched incident (rules 8, 9).
"""
