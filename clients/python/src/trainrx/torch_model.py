"""Rebuild a trained network from its weights file, with torch alone.

Needs the ``torch`` extra (``pip install 'trainrx[torch]'``). The weights are
safetensors whose metadata holds the normalised request (``spec``), the input
scaling (``preprocessing``) and the shapes (``features``, ``classes``); the
module layout below mirrors the server's, so the state dict loads strictly, and
the input scaling is applied the way the exported ``.pt2`` program applies it.
"""

from __future__ import annotations

import json
from typing import Any

try:
    import torch
    from safetensors.torch import load as _load_safetensors
    from torch import nn
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError("load_model needs torch and safetensors: pip install 'trainrx[torch]'") from exc

FORMAT = "trainrx-mlp-v1"


class Maxout(nn.Module):
    """The maximum of each group of ``pieces`` consecutive linear outputs."""

    def __init__(self, pieces: int) -> None:
        super().__init__()
        self.pieces = pieces

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (-1, self.pieces)).amax(dim=-1)


_SIMPLE = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "selu": nn.SELU,
           "gelu": nn.GELU, "silu": nn.SiLU}


def activation_module(spec: dict, width: int) -> nn.Module:
    name = spec["name"]
    if name == "leaky_relu":
        return nn.LeakyReLU(spec["negative_slope"])
    if name == "prelu":
        return nn.PReLU(num_parameters=width)
    if name == "maxout":
        return Maxout(spec["pieces"])
    if name not in _SIMPLE:
        raise ValueError(f"This SDK version does not know the activation {name!r}; upgrade trainrx.")
    return _SIMPLE[name]()


class HiddenBlock(nn.Module):
    def __init__(self, fan_in: int, width: int, activation: dict, batch_norm: bool, dropout: float,
                 residual: bool) -> None:
        super().__init__()
        pieces = activation.get("pieces", 1) if activation["name"] == "maxout" else 1
        self.linear = nn.Linear(fan_in, width * pieces)
        self.norm = nn.BatchNorm1d(width * pieces) if batch_norm else nn.Identity()
        self.act = activation_module(activation, width)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.residual = residual and fan_in == width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dropout(self.act(self.norm(self.linear(x))))
        return x + h if self.residual else h


class MLP(nn.Module):
    """The network a request describes (the same layout, and so the same state dict
    keys, as the server's)."""

    def __init__(self, spec: dict, features: int, classes: int) -> None:
        super().__init__()
        architecture, activation = spec["architecture"], spec["activation"]
        dropout = (spec.get("regularization") or {}).get("dropout", 0.0)
        blocks, fan_in = [], features
        for width in architecture["hidden_layers"]:
            blocks.append(HiddenBlock(fan_in, width, activation, architecture.get("batch_norm", False), dropout,
                                      architecture.get("residual", False)))
            fan_in = width
        self.hidden = nn.ModuleList(blocks)
        self.output = nn.Linear(fan_in, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.hidden:
            x = block(x)
        return self.output(x)


class InputScaling(nn.Module):
    """``(x - shift) / scale`` per feature, in float32: the job's input scaling."""

    def __init__(self, shift: list[float], scale: list[float]) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor(shift, dtype=torch.float64).to(torch.float32))
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float64).to(torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.shift) / self.scale


def input_scaling(preprocessing: dict | None, features: int) -> InputScaling | None:
    """The scaling a job's ``preprocessing`` record describes; None for ``none``."""
    method = (preprocessing or {}).get("method", "none")
    if method == "none":
        return None
    if method == "divide":
        return InputScaling([0.0] * features, [float(preprocessing["value"])] * features)
    if method == "standard":
        return InputScaling(preprocessing["mean"], preprocessing["std"])
    if method == "minmax":
        return InputScaling(preprocessing["min"], preprocessing["range"])
    raise ValueError(f"This SDK version does not know the input scaling {method!r}; upgrade trainrx.")


class TrainedModel(nn.Module):
    """A job's trained network with its input scaling as the first step, in eval mode.

    ``model(x)`` takes raw rows, in the units of the dataset (``digits`` pixels
    0..16, your upload's columns as in the file), exactly like the exported
    ``.pt2`` program; ``model.network(x)`` takes rows already scaled the way
    the network saw them in training. ``spec`` is the job's normalised
    request, ``preprocessing`` its scaling record.
    """

    def __init__(self, spec: dict, features: int, classes: int, preprocessing: dict | None = None) -> None:
        super().__init__()
        self.scaling = input_scaling(preprocessing, features)
        self.network = MLP(spec, features, classes)
        self.spec, self.features, self.classes = spec, features, classes
        self.preprocessing = preprocessing or {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x if self.scaling is None else self.scaling(x))

    @torch.inference_mode()
    def predict(self, x: Any) -> torch.Tensor:
        """Class indices for a batch of raw rows (anything ``torch.as_tensor`` takes)."""
        tensor = torch.as_tensor(x, dtype=torch.float32, device=self.network.output.weight.device)
        return self(tensor).argmax(dim=-1)


def read_weights(data: bytes) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The state dict and decoded metadata of a trainrx weights file."""
    header_len = int.from_bytes(data[:8], "little")
    meta = dict(json.loads(data[8:8 + header_len]).get("__metadata__") or {})
    for key in ("spec", "preprocessing"):
        if key in meta:
            meta[key] = json.loads(meta[key])
    for key in ("features", "classes"):
        if key in meta:
            meta[key] = int(meta[key])
    return _load_safetensors(data), meta


def model_from_weights(data: bytes, device: str | torch.device = "cpu") -> TrainedModel:
    state, meta = read_weights(data)
    if meta.get("format") not in (None, FORMAT):
        raise ValueError(f"Unknown weights format {meta.get('format')!r}; upgrade trainrx.")
    model = TrainedModel(meta["spec"], meta["features"], meta["classes"], meta.get("preprocessing"))
    model.network.load_state_dict(state, strict=True)
    return model.to(device).eval()
