"""The only Redis I/O in sandq: an async RESP client, its synchronous twin and the embedded default."""
