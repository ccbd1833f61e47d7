"""One module per API resource: ``client.jobs``, ``client.datasets``."""

from trainrx.resources.datasets import Datasets
from trainrx.resources.jobs import Jobs

__all__ = ["Datasets", "Jobs"]
