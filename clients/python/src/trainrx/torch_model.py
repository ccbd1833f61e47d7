"""Rebuild a trained network from its weights file, with torch alone.

Needs the ``torch`` extra (``pip install 'trainrx[torch]'``). The network, the input and target
scaling and the weights format are ``trainrx.network``'s, the very module the workers train and
export with, so the state dict loads strictly and the predictions are the worker's.
"""

from __future__ import annotations

from typing import Any

from trainrx.network import (FORMAT, REGRESSION, ServedModel, WeightsFormatError, build_network, network_config,
                             read_weights)

__all__ = ["FORMAT", "TrainedModel", "WeightsFormatError", "model_from_weights", "read_weights"]

try:
    import torch
except ImportError as exc:  # pragma: no cover - trainrx.network raised already
    raise ImportError("load_model needs torch and safetensors: pip install 'trainrx[torch]'") from exc


class TrainedModel(ServedModel):
    """A job's trained network with its input scaling as the first step, in eval mode.

    ``model(x)`` takes raw rows ``[batch, features]``, in the units of the dataset (``digits``
    pixels 0..16, your upload's columns as in the file), exactly like the exported ``.pt2``
    program, and returns logits ``[batch, classes]``, or for regression predictions ``[batch]`` in
    the target's units; ``model.network(x)`` takes rows already scaled the way the network saw them
    in training (and, for regression, predicts standardised targets). ``spec`` is the job's
    normalised request, ``preprocessing`` its scaling record, ``task`` classification or regression.
    """

    def __init__(self, meta: dict[str, Any]) -> None:
        super().__init__(build_network(network_config(meta)), meta.get("preprocessing"), meta["features"],
                         meta["task"])
        self.spec, self.features, self.classes = meta["spec"], meta["features"], meta["classes"]
        self.task, self.input_shape = meta["task"], meta["input_shape"]
        self.preprocessing = meta.get("preprocessing") or {}

    @torch.inference_mode()
    def predict(self, x: Any) -> torch.Tensor:
        """Class indices (classification) or values in the target's units (regression) for a batch
        of raw rows (anything ``torch.as_tensor`` takes)."""
        tensor = torch.as_tensor(x, dtype=torch.float32, device=self.network.output.weight.device)
        out = self(tensor)
        return out if self.task == REGRESSION else out.argmax(dim=-1)


def model_from_weights(data: bytes, device: str | torch.device = "cpu") -> TrainedModel:
    """The model a weights file holds; ``WeightsFormatError`` (a ``ValueError``) for a format
    this version cannot read."""
    state, meta = read_weights(data)
    model = TrainedModel(meta)
    model.network.load_state_dict(state, strict=True)
    return model.to(device).eval()
