"""The network a trainrx request describes, defined once: the training engine builds it, its probes
hook into it, the worker exports it and ``load_model`` rebuilds it, all from this module.

A network takes rows ``x [batch, features]`` as the network saw them in training (scaled). A CNN
reshapes them to its ``input_shape`` ([C, L]: 1-D convolutions; [C, H, W]: 2-D) first, runs its
convolution blocks, pools globally (average) or flattens, then its dense head; an MLP is the dense
head alone. ``ServedModel`` puts the job's input scaling in front and, for regression, the target
scaling behind, so that it takes raw rows and predicts in the dataset's units: the exported
``.pt2``/ONNX programs are a ``ServedModel`` and ``load_model`` returns one.

The weights file (safetensors, never pickle) is written and read here too (``weights_bytes``,
``read_weights``), in format ``trainrx-net-v2``; ``trainrx-mlp-v1`` files (MLPs on classification,
the same tensor names) still load. Needs torch and safetensors (``pip install 'trainrx[torch]'``);
nothing of the server.
"""

from __future__ import annotations

import json
import math
from typing import Any, Iterator

try:
    import torch
    from safetensors.torch import load as _load_safetensors
    from safetensors.torch import save as _save_safetensors
    from torch import nn
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError("trainrx.network needs torch and safetensors: pip install 'trainrx[torch]'") from exc

from trainrx.network_config import ActivationConfig, ArchitectureConfig, ConvBlockConfig, NetworkConfig

FORMAT = "trainrx-net-v2"
READABLE_FORMATS = ("trainrx-mlp-v1", FORMAT)
REGRESSION = "regression"


class WeightsFormatError(ValueError):
    """A weights file this version cannot read."""


# --- the layers -----------------------------------------------------------------------------

class Maxout(nn.Module):
    """The maximum of each group of ``pieces`` consecutive units (dim 1: features, or channels)."""

    def __init__(self, pieces: int) -> None:
        super().__init__()
        self.pieces = pieces

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(1, (-1, self.pieces)).amax(dim=2)


_SIMPLE = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "selu": nn.SELU,
           "gelu": nn.GELU, "silu": nn.SiLU}


def make_activation(spec: ActivationConfig, width: int) -> nn.Module:
    """The activation of a layer of ``width`` units or channels (PReLU: one slope each)."""
    if spec.name == "leaky_relu":
        return nn.LeakyReLU(spec.negative_slope)
    if spec.name == "prelu":
        return nn.PReLU(num_parameters=width, init=0.25)
    if spec.name == "maxout":
        return Maxout(spec.pieces)
    if spec.name not in _SIMPLE:
        raise ValueError(f"This version of trainrx does not know the activation {spec.name!r}; upgrade trainrx.")
    return _SIMPLE[spec.name]()


def _pieces(activation: ActivationConfig) -> int:
    return activation.pieces if activation.name == "maxout" else 1


class HiddenBlock(nn.Module):
    """linear -> batch norm -> activation -> dropout, plus the input when ``residual``."""

    def __init__(self, fan_in: int, width: int, activation: ActivationConfig, batch_norm: bool, dropout: float,
                 residual: bool) -> None:
        super().__init__()
        pieces = _pieces(activation)
        self.linear = nn.Linear(fan_in, width * pieces)
        self.norm = nn.BatchNorm1d(width * pieces) if batch_norm else nn.Identity()
        self.act = make_activation(activation, width)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.residual = residual and fan_in == width

    @property
    def weight_layer(self) -> nn.Module:
        return self.linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dropout(self.act(self.norm(self.linear(x))))
        return x + h if self.residual else h


_CONV = {1: nn.Conv1d, 2: nn.Conv2d}
_NORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}
_POOL = {("max", 1): nn.MaxPool1d, ("max", 2): nn.MaxPool2d, ("avg", 1): nn.AvgPool1d, ("avg", 2): nn.AvgPool2d}


def conv_output_shape(shape: tuple[int, ...], block: ConvBlockConfig) -> tuple[int, ...]:
    """[C, *spatial] after ``block``: the convolution (padding kernel // 2), then the pool (2, stride 2)."""
    pad = block.kernel // 2
    spatial = [(size + 2 * pad - block.kernel) // block.stride + 1 for size in shape[1:]]
    if block.pool is not None:
        spatial = [size // 2 for size in spatial]
    return (block.channels, *spatial)


class ConvBlock(nn.Module):
    """conv -> batch norm -> activation -> dropout, then the pool; plus the input when ``residual``
    (only where the block's output has its input's shape: same channels, stride 1, no pool)."""

    def __init__(self, in_shape: tuple[int, ...], block: ConvBlockConfig, activation: ActivationConfig,
                 batch_norm: bool, dropout: float, residual: bool) -> None:
        super().__init__()
        dims, pieces = len(in_shape) - 1, _pieces(activation)
        self.conv = _CONV[dims](in_shape[0], block.channels * pieces, block.kernel, stride=block.stride,
                                padding=block.kernel // 2)
        self.norm = _NORM[dims](block.channels * pieces) if batch_norm else nn.Identity()
        self.act = make_activation(activation, block.channels)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.pool = _POOL[(block.pool, dims)](2, stride=2) if block.pool else nn.Identity()
        self.out_shape = conv_output_shape(in_shape, block)
        self.residual = residual and self.out_shape == tuple(in_shape)

    @property
    def weight_layer(self) -> nn.Module:
        return self.conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool(self.dropout(self.act(self.norm(self.conv(x)))))
        return x + h if self.residual else h


class Network(nn.Module):
    """The network a request describes: convolution blocks (``cnn`` only), then the dense hidden
    layers, then the output layer. Takes scaled rows ``[batch, features]``.

    State dict keys: ``conv.<i>.conv|norm|act.*`` (cnn), ``hidden.<i>.linear|norm|act.*``,
    ``output.*``; an MLP's are those of the ``trainrx-mlp-v1`` format."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        arch, act = config.architecture, config.activation
        self.input_shape: tuple[int, ...] | None = None
        self.global_pool = arch.global_pool
        conv, fan_in = [], config.features
        if arch.is_cnn:
            if config.input_shape is None or math.prod(config.input_shape) != config.features:
                raise ValueError(f"a cnn needs an input_shape whose product is the feature count "
                                 f"({config.features}); got {config.input_shape}")
            self.input_shape = tuple(config.input_shape)
            shape = self.input_shape
            for block in arch.conv_layers:
                conv.append(ConvBlock(shape, block, act, arch.batch_norm, config.dropout, arch.residual))
                shape = conv[-1].out_shape
            fan_in = shape[0] if arch.global_pool else math.prod(shape)
        self.conv = nn.ModuleList(conv)
        hidden = []
        for width in arch.hidden_layers:
            hidden.append(HiddenBlock(fan_in, width, act, arch.batch_norm, config.dropout, arch.residual))
            fan_in = width
        self.hidden = nn.ModuleList(hidden)
        self.output = nn.Linear(fan_in, config.outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_shape is not None:
            x = x.unflatten(1, self.input_shape)
            for block in self.conv:
                x = block(x)
            x = x.mean(dim=tuple(range(2, x.dim()))) if self.global_pool else x.flatten(1)
        for block in self.hidden:
            x = block(x)
        return self.output(x)

    def blocks(self) -> Iterator[tuple[str, nn.Module]]:
        """The blocks with an activation, input to output, with the names the curves use."""
        for i, block in enumerate(self.conv):
            yield f"conv{i + 1}", block
        for i, block in enumerate(self.hidden):
            yield f"hidden{i + 1}", block

    def weight_layers(self) -> list[tuple[str, nn.Module]]:
        """The weight layers (convolutions and linear layers) from input to output, named as in the curves."""
        return [(name, block.weight_layer) for name, block in self.blocks()] + [("output", self.output)]


_GAIN_NAME = {"sigmoid": "sigmoid", "tanh": "tanh", "selu": "selu", "leaky_relu": "leaky_relu"}


def initialise(model: Network, scheme: str, activation: ActivationConfig) -> None:
    """Apply the requested initialisation to every weight layer; biases start at zero."""
    if scheme == "default":
        return
    nonlinearity = _GAIN_NAME.get(activation.name, "relu")
    slope = activation.negative_slope if activation.negative_slope is not None else 0.0
    for name, layer in model.weight_layers():
        act = "linear" if name == "output" else nonlinearity
        gain = nn.init.calculate_gain(act, slope if act == "leaky_relu" else None)
        w = layer.weight
        if scheme == "xavier_uniform":
            nn.init.xavier_uniform_(w, gain=gain)
        elif scheme == "xavier_normal":
            nn.init.xavier_normal_(w, gain=gain)
        elif scheme in ("kaiming_uniform", "kaiming_normal"):
            kaiming = nn.init.kaiming_uniform_ if scheme == "kaiming_uniform" else nn.init.kaiming_normal_
            mode_act = act if act in ("relu", "leaky_relu", "linear", "sigmoid", "tanh", "selu") else "relu"
            kaiming(w, a=slope, nonlinearity=mode_act)
        elif scheme == "orthogonal":
            nn.init.orthogonal_(w, gain=gain)
        else:
            raise ValueError(f"unknown init {scheme!r}")
        nn.init.zeros_(layer.bias)


def build_network(config: NetworkConfig) -> Network:
    """Build and initialise the network; call after seeding torch (every draw follows from the seed)."""
    model = Network(config)
    initialise(model, config.architecture.init, config.activation)
    return model


# --- scaling in and out ---------------------------------------------------------------------

class InputScaling(nn.Module):
    """``(x - shift) / scale`` per feature, in float32: the job's input scaling. The same module
    scales the training data and runs first in the exported program, so the two agree to the bit."""

    def __init__(self, shift: list[float], scale: list[float]) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor(shift, dtype=torch.float64).to(torch.float32))
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float64).to(torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.shift) / self.scale

    @classmethod
    def from_preprocessing(cls, preprocessing: dict | None, features: int) -> "InputScaling | None":
        """The module for a job's ``preprocessing`` record; None when the inputs are used as given."""
        method = (preprocessing or {}).get("method", "none")
        if method == "none":
            return None
        if method == "divide":
            return cls([0.0] * features, [float(preprocessing["value"])] * features)
        if method == "standard":
            return cls(preprocessing["mean"], preprocessing["std"])
        if method == "minmax":
            return cls(preprocessing["min"], preprocessing["range"])
        raise ValueError(f"This version of trainrx does not know the input scaling {method!r}; upgrade trainrx.")


class TargetScaling(nn.Module):
    """Regression: the network predicts standardised targets; ``y * std + mean`` in the dataset's units."""

    def __init__(self, mean: float, std: float) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(float(mean), dtype=torch.float32))
        self.register_buffer("std", torch.tensor(float(std), dtype=torch.float32))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.std + self.mean


class ServedModel(nn.Module):
    """Raw rows ``[batch, features]`` -> input scaling -> network -> logits ``[batch, classes]``, or
    for regression predictions ``[batch]`` in the target's units. In eval mode once built."""

    def __init__(self, network: Network, preprocessing: dict | None, features: int, task: str | None = None) -> None:
        super().__init__()
        self.scaling = InputScaling.from_preprocessing(preprocessing, features) or nn.Identity()
        self.network = network
        target = (preprocessing or {}).get("target")
        self.target = TargetScaling(target["mean"], target["std"]) if task == REGRESSION else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.network(self.scaling(x))
        return out if self.target is None else self.target(out.squeeze(-1))


# --- the weights file ------------------------------------------------------------------------

def weights_bytes(network: Network, request: dict, preprocessing: dict, features: int, classes: int,
                  task: str, input_shape: tuple[int, ...] | None) -> bytes:
    """The weights file: the state dict, and in the metadata everything that rebuilds the network
    (the normalised request, its architecture, the shapes, the input and target scaling)."""
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in network.state_dict().items()}
    architecture = {"type": "mlp", **request["architecture"]}
    metadata = {"format": FORMAT, "spec": json.dumps(request), "preprocessing": json.dumps(preprocessing),
                "features": str(features), "classes": str(classes), "task": task,
                "architecture": json.dumps(architecture),
                "input_shape": json.dumps(list(input_shape) if input_shape is not None else None)}
    return _save_safetensors(state, metadata=metadata)


def decode_metadata(raw: dict[str, str]) -> dict[str, Any]:
    """The metadata of a weights file, decoded; raises ``WeightsFormatError`` for a format this
    version cannot read. ``trainrx-mlp-v1`` files read as MLPs on classification."""
    fmt = raw.get("format")
    if fmt is not None and fmt not in READABLE_FORMATS:
        raise WeightsFormatError(f"Unknown weights format {fmt!r}: this version of trainrx reads "
                                 f"{', '.join(READABLE_FORMATS)}; upgrade trainrx.")
    meta: dict[str, Any] = dict(raw)
    for key in ("spec", "preprocessing", "architecture", "input_shape"):
        if key in meta:
            meta[key] = json.loads(meta[key])
    for key in ("features", "classes"):
        if key in meta:
            meta[key] = int(meta[key])
    meta.setdefault("task", "classification")
    meta.setdefault("input_shape", None)
    return meta


def read_weights(data: bytes) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The state dict and the decoded metadata of a trainrx weights file."""
    header_len = int.from_bytes(data[:8], "little")
    raw = dict(json.loads(data[8:8 + header_len]).get("__metadata__") or {})
    meta = decode_metadata(raw)
    return _load_safetensors(data), meta


def network_config(meta: dict[str, Any]) -> NetworkConfig:
    """The network a weights file's decoded metadata describes."""
    outputs = 1 if meta["task"] == REGRESSION else meta["classes"]
    return NetworkConfig.from_request(meta["spec"], meta["features"], outputs, meta["input_shape"])


__all__ = ["FORMAT", "READABLE_FORMATS", "WeightsFormatError", "Maxout", "make_activation", "HiddenBlock",
           "ConvBlock", "Network", "conv_output_shape", "initialise", "build_network", "InputScaling",
           "TargetScaling", "ServedModel", "weights_bytes", "decode_metadata", "read_weights", "network_config",
           "ArchitectureConfig", "ActivationConfig", "ConvBlockConfig", "NetworkConfig"]
