"""Pictures of a job: learning curves, gradients, activations, sampled steps, and
several jobs overlaid.

- ``core.plots.spec``: what can be asked for (names, sizes and their caps, the
  data a plot reads); no matplotlib, so the API imports it at no cost.
- ``core.plots.training`` and ``core.plots.probes``: pure functions from a job's
  numbers to a matplotlib ``Figure``; ``core.plots.render`` turns one into PNG.
- ``core.plots.pool``: the child processes the API renders in, so that its
  event loop never does.

No torch, no Flask.
"""
