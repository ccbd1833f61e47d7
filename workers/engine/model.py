"""The multilayer perceptron a request describes."""

from __future__ import annotations

import torch
from torch import nn

from workers.engine.config import ActivationConfig, NetworkConfig


class Maxout(nn.Module):
    """Keep the maximum of each group of ``pieces`` consecutive linear outputs."""

    def __init__(self, pieces: int) -> None:
        super().__init__()
        self.pieces = pieces

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (-1, self.pieces)).amax(dim=-1)


def make_activation(spec: ActivationConfig, width: int) -> nn.Module:
    name = spec.name
    if name == "leaky_relu":
        return nn.LeakyReLU(spec.negative_slope)
    if name == "prelu":
        return nn.PReLU(num_parameters=width, init=0.25)
    if name == "maxout":
        return Maxout(spec.pieces)
    simple = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "selu": nn.SELU,
              "gelu": nn.GELU, "silu": nn.SiLU}
    return simple[name]()


class HiddenBlock(nn.Module):
    """linear -> batch norm -> activation -> dropout, plus the input when ``residual``."""

    def __init__(self, fan_in: int, width: int, activation: ActivationConfig, batch_norm: bool, dropout: float,
                 residual: bool) -> None:
        super().__init__()
        pieces = activation.pieces if activation.name == "maxout" else 1
        self.linear = nn.Linear(fan_in, width * pieces)
        self.norm = nn.BatchNorm1d(width * pieces) if batch_norm else nn.Identity()
        self.act = make_activation(activation, width)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.residual = residual and fan_in == width

    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.linear(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dropout(self.act(self.pre_activation(x)))
        return x + h if self.residual else h


class MLP(nn.Module):
    def __init__(self, network: NetworkConfig) -> None:
        super().__init__()
        architecture = network.architecture
        blocks, fan_in = [], network.features
        for width in architecture.hidden_layers:
            blocks.append(HiddenBlock(fan_in, width, network.activation, architecture.batch_norm, network.dropout,
                                      architecture.residual))
            fan_in = width
        self.hidden = nn.ModuleList(blocks)
        self.output = nn.Linear(fan_in, network.outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.hidden:
            x = block(x)
        return self.output(x)

    def weight_layers(self) -> list[tuple[str, nn.Linear]]:
        """The weight layers from input to output, with the names the curves use."""
        layers = [(f"hidden{i + 1}", block.linear) for i, block in enumerate(self.hidden)]
        return layers + [("output", self.output)]


_GAIN_NAME = {"sigmoid": "sigmoid", "tanh": "tanh", "selu": "selu", "leaky_relu": "leaky_relu"}


def initialise(model: MLP, scheme: str, activation: ActivationConfig) -> None:
    """Apply the requested initialisation to every weight matrix; biases start at zero."""
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


def build_model(network: NetworkConfig) -> MLP:
    """Build and initialise the network; call after seeding torch."""
    model = MLP(network)
    initialise(model, network.architecture.init, network.activation)
    return model
