"""Operating a broker: backup and restore of everything that is state, the engine's version, and the
``backup``, ``restore`` and ``migrate`` commands."""
