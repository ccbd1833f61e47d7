"""The trained network as a program that runs without this project's code.

``served_model`` is ``trainrx.network.ServedModel`` around a CPU copy of the network in eval mode
(dropout off, batch norm frozen): the input scaling first, so raw rows ``[batch, features]`` of the
dataset's format give the right predictions, a CNN's reshape inside, and for regression the target
scaling last (predictions ``[batch]`` in the target's units). ``to_pt2`` exports it with
``torch.export`` (a dynamic batch dimension); ``to_onnx`` with the ONNX exporter (which needs the
``onnx`` and ``onnxscript`` packages).
"""

from __future__ import annotations

import copy
import io
import logging
import warnings

import torch
from torch import nn

from trainrx.network import ServedModel

EXAMPLE_BATCH = 2  # torch.export treats sizes 0 and 1 as special; any other size stands for every batch


def served_model(network: nn.Module, preprocessing: dict, features: int, task: str = "classification") -> ServedModel:
    network = copy.deepcopy(network).to("cpu").float()
    return ServedModel(network, preprocessing, features, task).eval()


def _example(features: int) -> tuple[torch.Tensor]:
    return (torch.zeros(EXAMPLE_BATCH, features),)


def output_name(model: ServedModel) -> str:
    """``logits`` for classification, ``prediction`` for regression."""
    return "logits" if model.target is None else "prediction"


def to_pt2(model: ServedModel, features: int) -> bytes:
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(model, _example(features), dynamic_shapes={"x": {0: batch}})
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()


def to_onnx(model: ServedModel, features: int) -> tuple[bytes, int]:
    """The ONNX bytes and the opset they use. The exporter is chatty (torchvision
    is absent, deprecations); none of that concerns the job."""
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(model, _example(features), dynamo=True, verbose=False,
                                        input_names=["x"], output_names=[output_name(model)],
                                        dynamic_shapes={"x": {0: "batch"}})
    finally:
        exporter_log.setLevel(level)
    proto = program.model_proto
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    return proto.SerializeToString(), int(opset)
