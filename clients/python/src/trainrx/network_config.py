"""What a network is, as frozen dataclasses read from a normalised request: the architecture, the
activation, and the shapes the data gives it. Torch-free, so that the worker's job config (and the
diagnosis that reads it) can use these types without importing torch; ``trainrx.network`` builds
the modules from them, for the training engine and for ``load_model`` alike.

Requests written before convolutional networks and regression existed lack ``architecture.type``,
``conv_layers`` and ``global_pool``: they read as the multilayer perceptron they always were.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True)
class ActivationConfig:
    name: str
    negative_slope: float | None = None  # leaky_relu
    pieces: int | None = None  # maxout

    @classmethod
    def from_request(cls, spec: Mapping[str, Any]) -> "ActivationConfig":
        return cls(name=spec["name"], negative_slope=spec.get("negative_slope"), pieces=spec.get("pieces"))


@dataclass(frozen=True)
class ConvBlockConfig:
    """One convolution block: conv ("same" padding, kernel // 2) -> batch norm -> activation ->
    dropout, then an optional 2x2 (or 2) pool of stride 2."""

    channels: int
    kernel: int = 3
    stride: int = 1
    pool: str | None = None  # None, "max" or "avg"

    @classmethod
    def from_request(cls, spec: int | Mapping[str, Any]) -> "ConvBlockConfig":
        if isinstance(spec, int):  # the shorthand: N channels, the defaults for the rest
            return cls(channels=spec)
        return cls(channels=spec["channels"], kernel=spec.get("kernel", 3), stride=spec.get("stride", 1),
                   pool=spec.get("pool"))


@dataclass(frozen=True)
class ArchitectureConfig:
    type: str = "mlp"  # "mlp" or "cnn"
    hidden_layers: tuple[int, ...] = ()  # mlp: the hidden layers; cnn: the dense head (may be empty)
    batch_norm: bool = False
    residual: bool = False
    init: str = "default"
    conv_layers: tuple[ConvBlockConfig, ...] = ()  # cnn only
    global_pool: bool = True  # cnn only: global average (True) or flatten (False) after the blocks

    @classmethod
    def from_request(cls, spec: Mapping[str, Any]) -> "ArchitectureConfig":
        return cls(type=spec.get("type", "mlp"), hidden_layers=tuple(spec.get("hidden_layers", ())),
                   batch_norm=bool(spec.get("batch_norm", False)), residual=bool(spec.get("residual", False)),
                   init=spec.get("init", "default"),
                   conv_layers=tuple(ConvBlockConfig.from_request(b) for b in spec.get("conv_layers") or ()),
                   global_pool=bool(spec.get("global_pool", True)))

    @property
    def is_cnn(self) -> bool:
        return self.type == "cnn"


@dataclass(frozen=True)
class NetworkConfig:
    """Everything that fixes a network's modules, and so its state dict: the request's architecture,
    activation and dropout, and the data's feature count, output count and spatial input shape."""

    architecture: ArchitectureConfig
    activation: ActivationConfig
    dropout: float
    features: int
    outputs: int  # classes, or 1 for regression
    input_shape: tuple[int, ...] | None = None  # [C, L] or [C, H, W]; a cnn needs one

    @classmethod
    def from_request(cls, request: Mapping[str, Any], features: int, outputs: int,
                     input_shape: tuple[int, ...] | list[int] | None = None) -> "NetworkConfig":
        """From a normalised request (a job's ``spec``); ``input_shape`` defaults to the request's
        ``dataset.input_shape``."""
        if input_shape is None:
            input_shape = (request.get("dataset") or {}).get("input_shape")
        return cls(architecture=ArchitectureConfig.from_request(request["architecture"]),
                   activation=ActivationConfig.from_request(request["activation"]),
                   dropout=float((request.get("regularization") or {}).get("dropout", 0.0)),
                   features=int(features), outputs=int(outputs),
                   input_shape=tuple(int(d) for d in input_shape) if input_shape is not None else None)
