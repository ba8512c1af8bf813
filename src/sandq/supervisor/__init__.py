"""The supervisor: the trio side of a worker (fetching, lock renewal, the child pool, the zygote driver).

Nothing but the CLI imports this package; children never do (they run ``sandq.child``).
"""
