"""Trained weights as safetensors (never pickle), with the request and the input
scaling in the metadata so that the file alone rebuilds the model."""

from __future__ import annotations

import json

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from safetensors import safe_open

FORMAT = "trainrx-mlp-v1"


def weights_bytes(model: torch.nn.Module, request: dict, preprocessing: dict, features: int,
                  classes: int) -> bytes:
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    metadata = {"format": FORMAT, "spec": json.dumps(request), "preprocessing": json.dumps(preprocessing),
                "features": str(features), "classes": str(classes)}
    return st_save(state, metadata=metadata)


def read_weights(data: bytes) -> tuple[dict[str, torch.Tensor], dict]:
    """The state dict and the decoded metadata of a weights file."""
    state = st_load(data)
    return state, _decode(_raw_metadata(data))


def _raw_metadata(data: bytes) -> dict:
    header_len = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + header_len])
    return header.get("__metadata__", {})


def read_weights_file(path: str) -> tuple[dict[str, torch.Tensor], dict]:
    with safe_open(path, framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, _decode(f.metadata() or {})


def _decode(meta: dict) -> dict:
    out = dict(meta)
    for key in ("spec", "preprocessing"):
        if key in out:
            out[key] = json.loads(out[key])
    for key in ("features", "classes"):
        if key in out:
            out[key] = int(out[key])
    return out
