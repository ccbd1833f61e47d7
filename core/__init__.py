"""Pieces both the API (service/) and the workers (workers/) need.

Nothing in here imports Flask or torch: the request specification, settings,
the job store, the artifact store and the built-in dataset catalogue.
"""

__version__ = "0.1.0"
