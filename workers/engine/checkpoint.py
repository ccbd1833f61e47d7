"""Checkpoints: a training run's state between two epochs, as bytes, so that a job whose
worker was lost resumes where it was instead of training again from epoch 1.

``TrainingState`` is everything that carries from one epoch to the next. Resuming from
the checkpoint of epoch k and training on gives, on CPU, the run that was never
interrupted, bit for bit: same weights, same curves, same probes. That is why the RNG
states are in it (dropout draws from torch's global generator, the batch order from the
shuffle generator) and why the early-stopping and probe state and the curves so far are
too (the summary, the best epoch and early stopping read them).

A checkpoint is ``torch.save`` of a dict of tensors and plain values, read back with
``weights_only=True`` so that loading one can never run code, followed by a SHA-256 of
those bytes: ``torch.load`` alone reads a flipped byte inside a tensor as a wrong weight.
It names the request it was taken for by a fingerprint (of the request as normalised, so that a
checkpoint taken before an upgrade still fits its job), and is refused for any other.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field

import torch

from trainrx.network import Network
from workers.engine.config import JobConfig
from workers.engine.early_stopping import EarlyStopping
from workers.engine.probes import Probes

FORMAT_VERSION = 1
MAGIC = b"trainrx-checkpoint\n"
_DIGEST = hashlib.sha256().digest_size


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from; the job trains from scratch instead."""


class CheckpointCorrupt(CheckpointError):
    """The bytes are not a whole, undamaged checkpoint."""


class CheckpointMismatch(CheckpointError):
    """A sound checkpoint, but of another request, another format version or another network."""


@dataclass
class TrainingState:
    """Everything that carries from one epoch to the next, and so what a checkpoint holds."""

    model: Network
    optimizer: torch.optim.Optimizer
    shuffle: torch.Generator  # the batch order
    stopper: EarlyStopping | None
    probes: Probes | None
    rows: list[dict] = field(default_factory=list)  # the curves, one row per recorded epoch
    epoch: int = 0  # the last recorded epoch
    global_step: int = 0
    train_s: float = 0.0  # training time up to the end of ``epoch``, earlier attempts included

    @property
    def device(self) -> torch.device:
        return self.model.output.weight.device


def fingerprint(request: dict) -> str:
    """Which request a checkpoint belongs to: the SHA-256 of its canonical JSON."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def capture(state: TrainingState, config: JobConfig) -> bytes:
    """The state as of now (the end of ``state.epoch``), for ``restore``."""
    device = state.device
    contents = {
        "format": FORMAT_VERSION,
        "request": fingerprint(config.request),
        "epoch": state.epoch,
        "global_step": state.global_step,
        "train_s": state.train_s,
        "rows": state.rows,
        "model": state.model.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            "shuffle": state.shuffle.get_state(),
        },
        "early_stopping": state.stopper.state_dict() if state.stopper else None,
        "probes": state.probes.state_dict() if state.probes else None,
    }
    buffer = io.BytesIO()
    torch.save(contents, buffer)
    payload = buffer.getvalue()
    return MAGIC + payload + hashlib.sha256(payload).digest()


def read(blob: bytes, config: JobConfig) -> dict:
    """The checkpoint's contents (tensors on the CPU), checked whole and taken for ``config``'s request."""
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise CheckpointCorrupt(f"a checkpoint is bytes, not {type(blob).__name__}")
    blob = bytes(blob)
    if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + _DIGEST:
        raise CheckpointCorrupt("not a trainrx checkpoint")
    payload, digest = blob[len(MAGIC):-_DIGEST], blob[-_DIGEST:]
    if hashlib.sha256(payload).digest() != digest:
        raise CheckpointCorrupt("the checkpoint is damaged or truncated (its checksum does not match)")
    try:
        contents = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as exc:  # the checksum held, so an engine that wrote what it cannot read
        raise CheckpointCorrupt(f"the checkpoint cannot be read: {type(exc).__name__}: {exc}") from exc
    if not isinstance(contents, dict) or "format" not in contents:
        raise CheckpointCorrupt("the checkpoint holds no format version")
    if contents["format"] != FORMAT_VERSION:
        raise CheckpointMismatch(f"the checkpoint has format version {contents['format']}; "
                                 f"this engine reads version {FORMAT_VERSION}")
    if contents.get("request") != fingerprint(config.request):
        raise CheckpointMismatch("the checkpoint was taken for another request")
    return contents


def restore(blob: bytes, state: TrainingState, config: JobConfig) -> None:
    """Load a ``capture`` of the run ``config`` describes into ``state``, freshly built for
    that request, so that training goes on at epoch ``state.epoch + 1``.

    Raises ``CheckpointCorrupt`` or ``CheckpointMismatch`` (both ``CheckpointError``, a
    ``ValueError``); ``state`` is then unusable and should be built again."""
    contents = read(blob, config)
    device = state.device
    try:
        state.model.load_state_dict(contents["model"])
        state.optimizer.load_state_dict(contents["optimizer"])
        if (state.stopper is None) != (contents["early_stopping"] is None) or \
                (state.probes is None) != (contents["probes"] is None):
            raise ValueError("early stopping or probes differ from the request's")
        if state.stopper:
            state.stopper.load_state_dict(contents["early_stopping"], device)
        if state.probes:
            state.probes.load_state_dict(contents["probes"])
        rng = contents["rng"]
        state.shuffle.set_state(rng["shuffle"])
        torch.set_rng_state(rng["torch"])
        if device.type == "cuda" and rng["cuda"] is not None:  # taken on another device type: not bit-equal anyway
            torch.cuda.set_rng_state(rng["cuda"], device)
        state.rows = list(contents["rows"])
        state.epoch, state.global_step, state.train_s = \
            int(contents["epoch"]), int(contents["global_step"]), float(contents["train_s"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointMismatch(f"the checkpoint does not fit this run: {type(exc).__name__}: {exc}") from exc
