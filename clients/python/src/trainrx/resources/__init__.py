"""One module per API resource: ``client.jobs``, ``client.datasets``, ``client.plots``, ``client.sweeps``."""

from trainrx.resources.datasets import Datasets
from trainrx.resources.jobs import Jobs
from trainrx.resources.plots import Plots
from trainrx.resources.sweeps import Sweeps

__all__ = ["Datasets", "Jobs", "Plots", "Sweeps"]
