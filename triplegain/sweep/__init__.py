"""``triplegain sweep``: a grid of replays (settings overrides × candle files × seeds), each run on the daemon's
own path on an account of its own, in parallel worker processes handed runs by a ``WorkSource``.

``grid`` builds the grid (pure); ``sweep`` checks each point's settings, runs them and turns their results into a
table; ``work`` is what travels between the sweep and its workers; ``worker`` runs one; ``local`` is the
``WorkSource`` of worker processes on this machine; ``cli`` the command.
"""
