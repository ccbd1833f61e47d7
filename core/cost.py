"""What a job will cost before it runs: compute (in multiply-accumulates) and peak memory.

Validation (core/spec.py) refuses a request whose estimate is over the
operator's limits, so that a job that cannot finish, or cannot fit, is a 422
at submission rather than a worker that runs out of time or memory. Pure
arithmetic on the normalised request and the dataset's shape; no torch.

The formulas are written out in docs/requests.md ("Cost limits"); a test holds
them equal to a hand count for a small network.

Compute counts multiply-accumulates (MACs), not parameters: a fully connected
layer costs ``fan_in x outputs`` per sample, which is also its parameter count,
but a convolution reuses each weight at every output position and costs far
more than its parameters say. Element-wise work (bias, batch norm,
activation, dropout, the residual sum) is counted as one MAC per element and
operation, so that it is not free, though it is small beside the matmuls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from core.datasets import REGRESSION, DatasetShape

# The worker's evaluation (workers/engine/loop.py, workers/engine/data.py) uses these: one definition.
EVAL_BATCH = 8192  # samples per evaluation chunk (no graph is kept, so only a chunk's activations live)
EVAL_SAMPLE_LIMIT = 10_000  # training examples evaluated after each epoch, at most

BACKWARD_FACTOR = 2  # the backward pass costs about twice the forward one: gradients of inputs and of weights
FLOAT_BYTES = 4  # float32 everywhere
LABEL_BYTES = 8  # int64 labels (regression targets are float32)
INDEX_BYTES = 8  # int64: where each max pool's maximum was, kept for backward
# Per parameter, besides the weight and its gradient: the optimizer's running state.
OPTIMIZER_STATE = {"sgd": 0, "momentum": 1, "nesterov": 1, "adagrad": 1, "rmsprop": 1, "adam": 2, "adamw": 2}
MB = 1024 * 1024


@dataclass(frozen=True)
class Layer:
    """One dense weight layer as the worker builds it (workers/engine/model.py)."""

    fan_in: int
    outputs: int  # the linear layer's outputs: width x pieces for maxout
    width: int  # what the next layer sees
    hidden: bool


@dataclass(frozen=True)
class ConvBlock:
    """One convolution block: conv ("same" padding, kernel // 2) -> batch norm -> activation ->
    dropout -> pool (2 wide, stride 2, per spatial axis); plus the block's input when ``residual``
    and the block keeps its input's shape."""

    in_channels: int
    outputs: int  # the convolution's output channels: channels x pieces for maxout
    channels: int  # what the next block sees
    kernel: int
    stride: int
    pool: str | None
    in_size: tuple[int, ...]  # spatial size of the block's input: (L,) or (H, W)
    conv_size: tuple[int, ...]  # after the convolution's stride
    out_size: tuple[int, ...]  # after the pool (= conv_size without one)

    @property
    def residual_fits(self) -> bool:
        """The block's output has its input's shape (same channels, stride 1, no pool), so a skip
        connection can add the input."""
        return self.in_channels == self.channels and self.stride == 1 and self.pool is None

    @property
    def positions(self) -> int:
        return math.prod(self.conv_size)

    @property
    def out_positions(self) -> int:
        return math.prod(self.out_size)


@dataclass(frozen=True)
class Network:
    convs: list[ConvBlock]
    dense: list[Layer]  # the hidden layers, then the output layer


def conv_size(size: int, kernel: int, stride: int) -> int:
    """PyTorch's output length of a convolution with padding ``kernel // 2``."""
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


def pool_size(size: int) -> int:
    """PyTorch's output length of a 2-wide pool of stride 2 (the last odd element dropped)."""
    return size // 2


def conv_blocks(input_shape: list[int] | tuple[int, ...], conv_layers: list[dict], activation: dict) -> list[ConvBlock]:
    """The blocks of a cnn on inputs of ``input_shape`` ([C, L] or [C, H, W]); sizes may reach 0
    here, which validation refuses (core/spec.py names the block)."""
    pieces = activation.get("pieces", 1) if activation["name"] == "maxout" else 1
    channels, size = input_shape[0], tuple(input_shape[1:])
    found = []
    for block in conv_layers:
        after_conv = tuple(conv_size(n, block["kernel"], block["stride"]) for n in size)
        after_pool = tuple(pool_size(n) for n in after_conv) if block["pool"] else after_conv
        found.append(ConvBlock(channels, block["channels"] * pieces, block["channels"], block["kernel"],
                               block["stride"], block["pool"], size, after_conv, after_pool))
        channels, size = block["channels"], after_pool
    return found


def head_features(blocks: list[ConvBlock], global_pool: bool) -> int:
    """What the dense head sees: the last block's channels (global average pool), or all its values (flatten)."""
    last = blocks[-1]
    return last.channels if global_pool else last.channels * last.out_positions


def layers(features: int, classes: int, hidden_layers: list[int], activation: dict) -> list[Layer]:
    """The dense layers on ``features`` inputs; ``classes`` is the output count (1 for regression)."""
    pieces = activation.get("pieces", 1) if activation["name"] == "maxout" else 1
    found, fan_in = [], features
    for width in hidden_layers:
        found.append(Layer(fan_in, width * pieces, width, True))
        fan_in = width
    return found + [Layer(fan_in, classes, classes, False)]


def network(architecture: dict, activation: dict, features: int, outputs: int,
            input_shape: list[int] | None) -> Network:
    """The whole network of a normalised ``architecture``; ``outputs`` is the class count, or 1 for
    regression. A request without ``type`` (stored before convolutions existed) is an MLP."""
    if architecture.get("type", "mlp") != "cnn":
        return Network([], layers(features, outputs, architecture["hidden_layers"], activation))
    blocks = conv_blocks(input_shape, architecture["conv_layers"], activation)
    head = head_features(blocks, architecture.get("global_pool", True))
    return Network(blocks, layers(head, outputs, architecture["hidden_layers"], activation))


def count_parameters(features: int, classes: int, hidden_layers: list[int], activation: dict,
                     batch_norm: bool, *, conv_layers: list[dict] | None = None,
                     input_shape: list[int] | None = None, global_pool: bool = True) -> int:
    """Trainable parameters of the network the worker builds (tests hold the two equal): an MLP, or
    with ``conv_layers`` (normalised blocks) and ``input_shape`` a cnn. ``classes`` is the output count."""
    architecture = {"type": "cnn" if conv_layers else "mlp", "hidden_layers": hidden_layers,
                    "conv_layers": conv_layers, "global_pool": global_pool}
    return parameters_of(network(architecture, activation, features, classes, input_shape), activation, batch_norm)


def parameters_of(net: Network, activation: dict, batch_norm: bool) -> int:
    """Per conv block: kernel weights (in_channels x outputs x kernel^d) and a bias per output channel,
    2 per output channel for batch norm, one PReLU slope per channel. Per dense layer: weights and
    biases, 2 per output for batch norm, one PReLU slope per unit."""
    prelu = activation["name"] == "prelu"
    total = 0
    for block in net.convs:
        total += block.in_channels * block.outputs * block.kernel ** len(block.in_size) + block.outputs
        total += 2 * block.outputs * batch_norm + block.channels * prelu
    for layer in net.dense:
        total += layer.fan_in * layer.outputs + layer.outputs
        if layer.hidden:
            total += 2 * layer.outputs * batch_norm + layer.width * prelu
    return total


def request_network(request: dict, shape: DatasetShape) -> Network:
    """The network of a normalised request on a dataset of this shape (the request's own
    ``dataset.input_shape`` when it has one)."""
    input_shape = request["dataset"].get("input_shape") or shape.input_shape
    return network(request["architecture"], request["activation"], shape.features, shape.outputs, input_shape)


def forward_macs(request: dict, features: int, classes: int, input_shape: list[int] | None = None) -> int:
    """Multiply-accumulates of one sample's forward pass (``classes``: the output count).

    Per conv block, at each of its output positions: ``in_channels x outputs x kernel^d`` (the
    convolution), then per output value one for the bias, two for batch norm, one for the
    activation; per channel value one for dropout and one for the residual sum when they apply;
    a pool costs one per value it reads (2 or 4 per output). The global average pool costs one per
    value of the last block. Per dense hidden layer: ``fan_in x outputs`` (the matmul), then per
    output one for the bias, two for batch norm, one for the activation; per unit one for dropout
    and one for the residual sum when they apply. The output layer: its matmul and bias.
    """
    arch = request["architecture"]
    input_shape = input_shape or request["dataset"].get("input_shape")
    net = network(arch, request["activation"], features, classes, input_shape)
    dropout = (request.get("regularization") or {}).get("dropout", 0.0) > 0
    total = 0
    for block in net.convs:
        taps = block.in_channels * block.kernel ** len(block.in_size)
        total += block.positions * (block.outputs * (taps + 1 + 2 * arch["batch_norm"] + 1))
        total += block.positions * block.channels * (dropout + (arch["residual"] and block.residual_fits))
        if block.pool:
            total += block.out_positions * block.channels * 2 ** len(block.in_size)
    if net.convs and arch.get("global_pool", True):
        total += net.convs[-1].out_positions * net.convs[-1].channels
    for layer in net.dense:
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
      copy when ``scale`` is not none (features x 4 bytes + an 8-byte label, or a
      4-byte regression target, a row);
    - parameters: weight, gradient and optimizer state, plus the best epoch's
      copy with early stopping's ``restore_best``, plus one more for the
      optimizer step's temporaries;
    - step: batch_size x everything autograd keeps for backward (see
      ``kept_per_sample``), plus two gradient buffers of the largest activation;
    - evaluation: a chunk of up to EVAL_BATCH samples with two live activations
      of the largest size and the outputs with their loss terms.
    """
    arch, activation = request["architecture"], request["activation"]
    outputs = shape.outputs
    net = request_network(request, shape)
    input_shape = request["dataset"].get("input_shape") or shape.input_shape
    macs = forward_macs(request, shape.features, outputs, input_shape)
    train, val = split_sizes(shape.rows, request["dataset"])
    evaluated = min(train, EVAL_SAMPLE_LIMIT) + val
    epochs = request["epochs"]
    work = epochs * ((1 + BACKWARD_FACTOR) * train + evaluated) * macs + shape.test_rows * macs

    dropout = (request.get("regularization") or {}).get("dropout", 0.0) > 0
    kept_floats, kept_bytes = kept_per_sample(net, shape.features, arch, dropout)
    widest = largest_activation(net, shape.features)
    batch = min(request["batch_size"], max(train, 1))
    step = batch * ((kept_floats + 2 * widest) * FLOAT_BYTES + kept_bytes)
    chunk = min(EVAL_BATCH, max(min(train, EVAL_SAMPLE_LIMIT), val, shape.test_rows, 1))
    evaluation = chunk * (2 * widest + 2 * outputs) * FLOAT_BYTES

    parameters = parameters_of(net, activation, arch["batch_norm"])
    copies = 2 + OPTIMIZER_STATE.get(request["optimizer"]["name"], 2) + 1
    if request.get("patience") is not None and (request.get("early_stopping") or {}).get("restore_best", True):
        copies += 1
    row_bytes = shape.features * FLOAT_BYTES + (FLOAT_BYTES if shape.task == REGRESSION else LABEL_BYTES)
    scaled = request["dataset"].get("scale", "none") != "none"
    dataset = (shape.rows * (2 + scaled) + shape.test_rows * 2) * row_bytes
    memory = {"dataset": dataset, "parameters": parameters * copies * FLOAT_BYTES, "step": step,
              "evaluation": evaluation}
    return JobCost(macs, train, evaluated, work, memory)


def kept_per_sample(net: Network, features: int, arch: dict, dropout: bool) -> tuple[int, int]:
    """(floats, bytes) that autograd keeps for backward per sample: the input; per conv block and
    per hidden layer the linear/conv output, batch norm's output, the activation, dropout's output
    (and its 1-byte mask), the residual sum; per pooled block the pool's output (and, for max, its
    8-byte indices); the global pool's output; the outputs and their loss terms."""
    floats, extra = features, 0
    for block in net.convs:
        positions = block.positions
        floats += block.outputs * positions * (1 + arch["batch_norm"]) + block.channels * positions
        if dropout:
            floats += block.channels * positions
            extra += block.channels * positions
        if arch["residual"] and block.residual_fits:
            floats += block.channels * positions
        if block.pool:
            floats += block.channels * block.out_positions
            extra += INDEX_BYTES * block.channels * block.out_positions * (block.pool == "max")
    if net.convs and arch.get("global_pool", True):
        floats += net.convs[-1].channels
    for layer in net.dense[:-1]:
        floats += layer.outputs * (1 + arch["batch_norm"]) + layer.width
        if dropout:
            floats += layer.width
            extra += layer.width
        if arch["residual"] and layer.fan_in == layer.width:
            floats += layer.width
    return floats + 2 * net.dense[-1].outputs, extra


def largest_activation(net: Network, features: int) -> int:
    """Values of the largest single activation of one sample (the input, a conv or dense output)."""
    sizes = [features, *(block.outputs * block.positions for block in net.convs),
             *(layer.outputs for layer in net.dense)]
    return max(sizes)


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
