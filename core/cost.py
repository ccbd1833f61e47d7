"""What a job will cost before it runs: compute (in multiply-accumulates) and peak memory.

Validation (core/spec.py) refuses a request whose estimate is over the
operator's limits, so that a job that cannot finish, or cannot fit, is a 422
at submission rather than a worker that runs out of time or memory. Pure
arithmetic on the normalised request and the dataset's shape; no torch.

The formulas are written out in docs/requests.md ("Cost limits"); a test holds
them equal to a hand count for a small network.

Compute counts multiply-accumulates (MACs), not parameters: a fully connected
layer costs ``fan_in x outputs`` per sample, which is also its parameter count,
but a convolution (a later layer type) reuses each weight at every position and
costs far more than its parameters say. Element-wise work (bias, batch norm,
activation, dropout, the residual sum) is counted as one MAC per element and
operation, so that it is not free, though it is small beside the matmuls.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.datasets import DatasetShape

# The worker's evaluation (workers/engine/loop.py, workers/engine/data.py) uses these: one definition.
EVAL_BATCH = 8192  # samples per evaluation chunk (no graph is kept, so only a chunk's activations live)
EVAL_SAMPLE_LIMIT = 10_000  # training examples evaluated after each epoch, at most

BACKWARD_FACTOR = 2  # the backward pass costs about twice the forward one: gradients of inputs and of weights
FLOAT_BYTES = 4  # float32 everywhere
LABEL_BYTES = 8  # int64 labels
# Per parameter, besides the weight and its gradient: the optimizer's running state.
OPTIMIZER_STATE = {"sgd": 0, "momentum": 1, "nesterov": 1, "adagrad": 1, "rmsprop": 1, "adam": 2, "adamw": 2}
MB = 1024 * 1024


@dataclass(frozen=True)
class Layer:
    """One weight layer as the worker builds it (workers/engine/model.py)."""

    fan_in: int
    outputs: int  # the linear layer's outputs: width x pieces for maxout
    width: int  # what the next layer sees
    hidden: bool


def layers(features: int, classes: int, hidden_layers: list[int], activation: dict) -> list[Layer]:
    pieces = activation.get("pieces", 1) if activation["name"] == "maxout" else 1
    found, fan_in = [], features
    for width in hidden_layers:
        found.append(Layer(fan_in, width * pieces, width, True))
        fan_in = width
    return found + [Layer(fan_in, classes, classes, False)]


def count_parameters(features: int, classes: int, hidden_layers: list[int], activation: dict,
                     batch_norm: bool) -> int:
    """Trainable parameters of the MLP the worker builds (tests hold the two equal)."""
    total = 0
    for layer in layers(features, classes, hidden_layers, activation):
        total += layer.fan_in * layer.outputs + layer.outputs
        if layer.hidden and batch_norm:
            total += 2 * layer.outputs
        if layer.hidden and activation["name"] == "prelu":
            total += layer.width
    return total


def forward_macs(request: dict, features: int, classes: int) -> int:
    """Multiply-accumulates of one sample's forward pass.

    Per hidden layer: ``fan_in x outputs`` (the matmul), then per output one for
    the bias, two for batch norm (normalise, then scale and shift), one for the
    activation; per unit one for dropout and one for the residual sum when they
    apply. The output layer: its matmul and bias.
    """
    arch = request["architecture"]
    dropout = (request.get("regularization") or {}).get("dropout", 0.0) > 0
    total = 0
    for layer in layers(features, classes, arch["hidden_layers"], request["activation"]):
        total += layer.fan_in * layer.outputs + layer.outputs
        if layer.hidden:
            total += layer.outputs * (2 * arch["batch_norm"] + 1)
            total += layer.width * (dropout + (arch["residual"] and layer.fan_in == layer.width))
    return total


def split_sizes(rows: int, dataset: dict) -> tuple[int, int]:
    """(training samples, validation samples) after the split and ``train_samples``."""
    val = min(max(round(rows * dataset.get("validation_split", 0.2)), 1), max(rows - 1, 0))
    train = rows - val
    if dataset.get("train_samples") is not None:
        train = min(train, dataset["train_samples"])
    return train, val


@dataclass(frozen=True)
class JobCost:
    macs_per_sample: int  # one forward pass
    train_samples: int
    eval_samples: int  # evaluated after every epoch: a share of the training samples and the validation set
    work: int  # MACs for the whole job
    memory: dict[str, int]  # bytes, per part (see ``estimate``)

    @property
    def memory_bytes(self) -> int:
        return self.memory["dataset"] + self.memory["parameters"] + max(self.memory["step"],
                                                                         self.memory["evaluation"])

    @property
    def memory_mb(self) -> int:
        return -(-self.memory_bytes // MB)


def estimate(request: dict, shape: DatasetShape) -> JobCost:
    """The cost of a (normalised) request on a dataset of this shape.

    work = epochs x (3 x training samples + evaluated samples) x forward MACs
           + test samples x forward MACs
    where a training step is a forward and a backward pass (about 3 forward
    passes), and each epoch evaluates up to EVAL_SAMPLE_LIMIT training samples
    and the validation set (forward only); the test set is evaluated once.

    Peak memory = dataset + parameters + the larger of a training step and an
    evaluation chunk, host and device counted together (what a CPU worker
    holds):
    - dataset: the rows as loaded plus their training/validation copies, a third
      copy when ``scale`` is not none (features x 4 bytes + an 8-byte label a row);
    - parameters: weight, gradient and optimizer state, plus the best epoch's
      copy with early stopping's ``restore_best``, plus one more for the
      optimizer step's temporaries;
    - step: batch_size x everything autograd keeps for backward (the input, and
      per hidden layer the linear output, batch norm's output, the activation,
      dropout's output and mask, the residual sum; the logits and their
      log-softmax), plus two gradient buffers of the widest layer;
    - evaluation: a chunk of up to EVAL_BATCH samples with two live activations
      of the widest layer and the logits with their log-softmax.
    """
    arch, activation = request["architecture"], request["activation"]
    features, classes = shape.features, shape.classes
    macs = forward_macs(request, features, classes)
    train, val = split_sizes(shape.rows, request["dataset"])
    evaluated = min(train, EVAL_SAMPLE_LIMIT) + val
    epochs = request["epochs"]
    work = epochs * ((1 + BACKWARD_FACTOR) * train + evaluated) * macs + shape.test_rows * macs

    net = layers(features, classes, arch["hidden_layers"], activation)
    dropout = (request.get("regularization") or {}).get("dropout", 0.0) > 0
    kept_floats, kept_bytes = features, 0
    for layer in net[:-1]:
        kept_floats += layer.outputs * (1 + arch["batch_norm"]) + layer.width
        if dropout:
            kept_floats += layer.width
            kept_bytes += layer.width  # the bool mask
        if arch["residual"] and layer.fan_in == layer.width:
            kept_floats += layer.width
    kept_floats += 2 * classes
    widest = max([features, classes, *(layer.outputs for layer in net)])
    batch = min(request["batch_size"], max(train, 1))
    step = batch * ((kept_floats + 2 * widest) * FLOAT_BYTES + kept_bytes)
    chunk = min(EVAL_BATCH, max(min(train, EVAL_SAMPLE_LIMIT), val, shape.test_rows, 1))
    evaluation = chunk * (2 * widest + 2 * classes) * FLOAT_BYTES

    parameters = count_parameters(features, classes, arch["hidden_layers"], activation, arch["batch_norm"])
    copies = 2 + OPTIMIZER_STATE.get(request["optimizer"]["name"], 2) + 1
    if request.get("patience") is not None and (request.get("early_stopping") or {}).get("restore_best", True):
        copies += 1
    row_bytes = features * FLOAT_BYTES + LABEL_BYTES
    scaled = request["dataset"].get("scale", "none") != "none"
    dataset = (shape.rows * (2 + scaled) + shape.test_rows * 2) * row_bytes
    memory = {"dataset": dataset, "parameters": parameters * copies * FLOAT_BYTES, "step": step,
              "evaluation": evaluation}
    return JobCost(macs, train, evaluated, work, memory)


def over_limits(cost: JobCost, request: dict, max_work: int, max_memory_mb: int) -> dict[str, list[str]]:
    """Messages for each limit the estimate is over (empty when it fits), keyed ``work`` and ``memory_mb``."""
    errors: dict[str, list[str]] = {}
    if cost.work > max_work:
        errors["work"] = [
            f"The job would take about {cost.work:.3g} multiply-accumulates ({request['epochs']:,} epochs x "
            f"({cost.train_samples:,} training samples x 3 for forward and backward + {cost.eval_samples:,} "
            f"evaluated) x {cost.macs_per_sample:,} per sample); at most {max_work:.3g} are allowed "
            "(TRAINRX_MAX_WORK). Use fewer epochs, fewer training samples (dataset.train_samples) or a smaller "
            "network."]
    if cost.memory_mb > max_memory_mb:
        parts = ", ".join(f"{name} {-(-size // MB):,} MB" for name, size in cost.memory.items())
        errors["memory_mb"] = [
            f"The job would need about {cost.memory_mb:,} MB at its peak ({parts}; the peak holds the dataset, "
            f"the parameters and the larger of a step and an evaluation chunk); at most {max_memory_mb:,} MB are "
            "allowed (TRAINRX_MAX_JOB_MEMORY_MB). Use a smaller batch_size or a smaller network."]
    return errors
