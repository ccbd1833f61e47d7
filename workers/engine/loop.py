"""The training loop: ``run`` trains one request's network on resident data."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

import torch

from core.cost import EVAL_BATCH
from workers.engine.data import DeviceData
from workers.engine.early_stopping import EarlyStopping
from workers.engine.model import MLP, build_model
from workers.engine.objective import Classification
from workers.engine.optim import build_optimizer, weight_penalty
from workers.engine.probes import PROBE_SAMPLES, Probes, forward_with_stats

from core.stop_reasons import CANCELLED, DIVERGED, EARLY_STOPPED, SHUTDOWN, TIME_LIMIT


class Hooks(Protocol):
    def stop_reason(self) -> str | None:
        """Checked before every step: a reason to stop (cancelled, shutdown) or None."""

    def on_epoch(self, row: dict, summary: dict, probes: Probes | None) -> None:
        """Called after every recorded epoch with its curves row, the summary so far and the
        probes (None when the request turned them off)."""

    def log(self, line: str) -> None: ...


class NoHooks:
    def stop_reason(self) -> str | None:
        return None

    def on_epoch(self, row: dict, summary: dict, probes: Probes | None) -> None:
        pass

    def log(self, line: str) -> None:
        pass


@dataclass
class RunResult:
    model: MLP
    rows: list[dict]
    summary: dict | None
    stop_reason: str | None
    train_s: float
    layer_names: list[str] = field(default_factory=list)
    probes: Probes | None = None


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


@torch.inference_mode()
def evaluate(model: MLP, x: torch.Tensor, y: torch.Tensor, objective=Classification,
             probe_activation: str | None = None) -> tuple[float, float] | tuple[float, float, dict]:
    """Mean loss and accuracy in eval mode (dropout off, batch norm frozen). With
    ``probe_activation``, the first PROBE_SAMPLES samples also yield activation statistics."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device, dtype=torch.long)
    stats = None
    start = 0
    if probe_activation is not None and x.shape[0]:
        logits, stats = forward_with_stats(model, x[:PROBE_SAMPLES], probe_activation)
        loss_sum += objective.loss(logits, y[:PROBE_SAMPLES], reduction="sum")
        correct += objective.correct(logits, y[:PROBE_SAMPLES])
        start = PROBE_SAMPLES
    for start in range(start, x.shape[0], EVAL_BATCH):
        logits = model(x[start:start + EVAL_BATCH])
        target = y[start:start + EVAL_BATCH]
        loss_sum += objective.loss(logits, target, reduction="sum")
        correct += objective.correct(logits, target)
    model.train(was_training)
    n = max(int(x.shape[0]), 1)
    if probe_activation is not None:
        return loss_sum.item() / n, correct.item() / n, stats
    return loss_sum.item() / n, correct.item() / n


def _summary(row: dict, best_epoch: int | None, epochs_run: int, stopped_early: bool) -> dict:
    return {
        "train_loss": row["train_loss"], "val_loss": row["val_loss"],
        "train_accuracy": row["train_accuracy"], "val_accuracy": row["val_accuracy"],
        "best_epoch": best_epoch, "epochs_run": epochs_run, "stopped_early": stopped_early,
    }


def _best_by_val_loss(rows: list[dict]) -> int | None:
    finite = [r for r in rows if r["val_loss"] is not None]
    return min(finite, key=lambda r: r["val_loss"])["epoch"] if finite else None


def run(request: dict, data: DeviceData, hooks: Hooks | None = None,
        clock: Callable[[], float] = time.monotonic, deadline: float | None = None) -> RunResult:
    """Train the network ``request`` describes; stop early for the reasons ``hooks`` gives,
    on the time limit, on early stopping, or as soon as the loss turns non-finite.

    ``deadline`` (on ``clock``) is when max_runtime_s runs out; the worker sets it from
    the job's start, so that setup counts. Without it the budget starts here. Each
    epoch's evaluation counts too: a step after it past the deadline stops the run."""
    hooks = hooks or NoHooks()
    objective = Classification
    device = data.x_train.device
    torch.manual_seed(request["seed"])
    model = build_model(request, data.features, data.classes).to(device)
    layers = model.weight_layers()
    weights = [layer.weight for _, layer in layers]
    optimizer = build_optimizer(request["optimizer"], model.parameters())
    l1, l2 = request["regularization"]["l1"], request["regularization"]["l2"]
    shuffle = torch.Generator().manual_seed(request["seed"])
    stopper = None
    if request.get("patience") is not None:
        es = request["early_stopping"]
        stopper = EarlyStopping(request["patience"], es["monitor"], es["min_delta"], es["restore_best"])
    skip_single = request["architecture"]["batch_norm"]  # batch norm cannot train on a batch of one
    batch_size, n = request["batch_size"], data.x_train.shape[0]
    started = clock()
    if deadline is None:
        deadline = started + request["max_runtime_s"]

    steps_per_epoch = max(1, -(-n // batch_size))
    names = [name for name, _ in layers]
    probes = Probes(model, data.x_train, request["activation"]["name"], names, steps_per_epoch) \
        if request.get("diagnose", True) else None

    rows: list[dict] = []
    reason: str | None = None
    global_step = 0
    for epoch in range(1, request["epochs"] + 1):
        model.train()
        order = torch.randperm(n, generator=shuffle).to(device)
        grad_sums = torch.zeros(len(weights), device=device)
        if probes:
            probes.epoch_start(weights)
        steps = 0
        for start in range(0, n, batch_size):
            reason = hooks.stop_reason() or (TIME_LIMIT if clock() > deadline else None)
            if reason:
                break
            idx = order[start:start + batch_size]
            if skip_single and idx.shape[0] == 1:
                continue
            loss = objective.loss(model(data.x_train[idx]), data.y_train[idx])
            penalty = weight_penalty(weights, l1, l2)
            optimizer.zero_grad(set_to_none=True)
            (loss if penalty is None else loss + penalty).backward()
            norms = torch.stack(torch._foreach_norm([w.grad for w in weights]))
            grad_sums += norms
            steps += 1
            global_step += 1
            loss_value = loss.item()
            if probes:
                probes.on_step(norms)
                if probes.sampled(global_step, steps) or not math.isfinite(loss_value):
                    probes.record_step(global_step, epoch, loss_value, norms)
            if not math.isfinite(loss_value):
                reason = DIVERGED
                hooks.log(f"epoch {epoch}: the loss turned non-finite at step {steps}; training stops")
                break
            optimizer.step()
        if reason in (CANCELLED, SHUTDOWN) or (reason == TIME_LIMIT and steps == 0):
            break
        if probes:
            train_loss, train_acc, activations = evaluate(model, data.x_train_eval, data.y_train_eval, objective,
                                                          probe_activation=request["activation"]["name"])
        else:
            train_loss, train_acc = evaluate(model, data.x_train_eval, data.y_train_eval, objective)
        val_loss, val_acc = evaluate(model, data.x_val, data.y_val, objective)
        norms_mean = (grad_sums / max(steps, 1)).tolist()
        first, last = norms_mean[0], norms_mean[-1]
        row = {
            "epoch": epoch, "train_loss": _finite(train_loss), "train_accuracy": train_acc,
            "val_loss": _finite(val_loss), "val_accuracy": val_acc,
            "learning_rate": optimizer.param_groups[0]["lr"],
            "grad_norm": {name: _finite(v) for name, v in zip(names, norms_mean)},
        }
        if probes:
            row["grad_ratio"] = _finite(first / last) if last > 0 and math.isfinite(first) else None
            row.update(probes.epoch_values(weights, activations))
        rows.append(row)
        stop = stopper.update(epoch, row, model) if stopper else False
        best = stopper.best_epoch if stopper else _best_by_val_loss(rows)
        hooks.on_epoch(row, _summary(row, best, epoch, False), probes)
        hooks.log(f"epoch {epoch}: train_loss={train_loss:.4f} train_accuracy={train_acc:.4f} "
                  f"val_loss={val_loss:.4f} val_accuracy={val_acc:.4f}")
        if reason:
            break
        if stop:
            reason = EARLY_STOPPED
            hooks.log(f"early stopping at epoch {epoch}: no improvement of {stopper.monitor} for "
                      f"{stopper.patience} epochs (best epoch {stopper.best_epoch})")
            break
    train_s = clock() - started

    summary = None
    if rows:
        returned = rows[-1]
        if stopper and stopper.restore_best and stopper.best_state is not None:
            model.load_state_dict(stopper.best_state)
            returned = next(r for r in rows if r["epoch"] == stopper.best_epoch)
        best = stopper.best_epoch if stopper else _best_by_val_loss(rows)
        summary = _summary(returned, best, len(rows), reason == EARLY_STOPPED)
        summary["returned_epoch"] = returned["epoch"]
        if data.x_test is not None:
            test_loss, test_acc = evaluate(model, data.x_test, data.y_test, objective)
            summary["test_loss"], summary["test_accuracy"] = _finite(test_loss), test_acc
    return RunResult(model, rows, summary, reason, train_s, names, probes)
