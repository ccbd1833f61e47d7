"""Celery app and tasks (thin) and the training engine (plain PyTorch). Never imports Flask."""
