"""The training engine: plain PyTorch, no Celery, no database.

``run(config, data, hooks)`` trains one network and returns its results; the
worker task wires it to the job store.
"""
