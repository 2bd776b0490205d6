"""The `custody` command: a thin face over the ``vault`` library (and, later, a server)."""
