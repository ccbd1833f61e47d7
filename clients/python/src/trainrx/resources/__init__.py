"""One module per API resource: ``client.jobs``, ``client.datasets``, ``client.plots``."""

from trainrx.resources.datasets import Datasets
from trainrx.resources.jobs import Jobs
from trainrx.resources.plots import Plots

__all__ = ["Datasets", "Jobs", "Plots"]
