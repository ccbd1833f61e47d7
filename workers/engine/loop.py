"""The training loop: ``run`` trains one request's network on resident data."""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Callable, Protocol

import torch

from trainrx.network import Network, build_network
from workers.engine import checkpoint
from workers.engine.checkpoint import TrainingState
from workers.engine.config import JobConfig
from workers.engine.data import DeviceData
from workers.engine.early_stopping import EarlyStopping
from workers.engine.evaluation import Evaluation, evaluate
from workers.engine.objective import Objective, objective_for
from workers.engine.optim import build_optimizer, weight_penalty
from workers.engine.probes import Probes

from core.stop_reasons import CANCELLED, DIVERGED, EARLY_STOPPED, SHUTDOWN, TIME_LIMIT


class Hooks(Protocol):
    def stop_reason(self) -> str | None:
        """Checked before every step: a reason to stop (cancelled, shutdown) or None."""

    def on_epoch(self, row: dict, summary: dict, probes: Probes | None) -> None:
        """Called after every recorded epoch with its curves row, the summary so far and the
        probes (None when the request turned them off). Not called again for the epochs a
        resumed run restored from its checkpoint; called for those it runs again."""

    def checkpoint_due(self, epoch: int) -> bool:
        """Asked after every recorded epoch but the run's last (and not when the run stops
        there): whether to take a checkpoint now, which ``checkpoint`` then receives."""

    def checkpoint(self, epoch: int, blob: bytes) -> None:
        """The run's state as of the end of ``epoch`` (``workers.engine.checkpoint``): keep it,
        and a later ``run(..., resume=blob)`` for the same request goes on at epoch + 1."""

    def log(self, line: str) -> None: ...


class NoHooks:
    def stop_reason(self) -> str | None:
        return None

    def on_epoch(self, row: dict, summary: dict, probes: Probes | None) -> None:
        pass

    def checkpoint_due(self, epoch: int) -> bool:
        return False

    def checkpoint(self, epoch: int, blob: bytes) -> None:
        pass

    def log(self, line: str) -> None:
        pass


@dataclass
class RunResult:
    model: Network
    rows: list[dict]
    summary: dict | None
    stop_reason: str | None
    train_s: float  # earlier attempts' training time up to the checkpoint resumed from included
    probes: Probes | None = None
    resumed_from: int | None = None  # the epoch of the checkpoint the run resumed from


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _format(value: float | None) -> str:
    return "non-finite" if value is None else f"{value:.4f}"


def _summary(row: dict, objective: Objective, best_epoch: int | None, epochs_run: int,
             stopped_early: bool) -> dict:
    keys = ["train_loss", "val_loss"] + [f"{split}_{m}" for m in objective.metrics_names for split in ("train", "val")]
    return {**{key: row[key] for key in keys},
            "best_epoch": best_epoch, "epochs_run": epochs_run, "stopped_early": stopped_early}


class _BestByValLoss:
    """The epoch with the lowest validation loss (the first, on ties), kept up to date as rows
    arrive: asked after every epoch, so it must not rescan the whole history each time."""

    def __init__(self) -> None:
        self.seen, self.epoch, self.loss = 0, None, None

    def update(self, rows: list[dict]) -> int | None:
        for row in rows[self.seen:]:
            value = row["val_loss"]
            if value is not None and (self.loss is None or value < self.loss):
                self.epoch, self.loss = row["epoch"], value
        self.seen = len(rows)
        return self.epoch


def _start(config: JobConfig, data: DeviceData) -> TrainingState:
    """The state before epoch 1: every random draw of the run follows from the request's seed."""
    torch.manual_seed(config.seed)
    model = build_network(config.network(data.features, data.outputs)).to(data.x_train.device)
    stopper = None
    if config.patience is not None:
        es = config.early_stopping
        stopper = EarlyStopping(config.patience, es.monitor, es.min_delta, es.restore_best)
    probes = None
    if config.diagnose:
        steps_per_epoch = max(1, -(-data.x_train.shape[0] // config.batch_size))
        probes = Probes(model, data.x_train, config.activation.name,
                        [name for name, _ in model.weight_layers()], steps_per_epoch)
    return TrainingState(model=model, optimizer=build_optimizer(config.optimizer, model.parameters()),
                         shuffle=torch.Generator().manual_seed(config.seed), stopper=stopper, probes=probes)


class _EpochStart:
    """What a pass over the training data changes, as it was before the pass: the weights and
    buffers, the optimizer's state, the RNGs (dropout, batch order) and the step count; so that
    the pass can be taken again, drawing the same batches and the same dropout masks."""

    def __init__(self, state: TrainingState) -> None:
        device = state.device
        self.model = {k: v.detach().clone() for k, v in state.model.state_dict().items()}
        self.optimizer = copy.deepcopy(state.optimizer.state_dict())
        self.rng = torch.get_rng_state()
        self.cuda_rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
        self.shuffle = state.shuffle.get_state()
        self.global_step = state.global_step

    def restore(self, state: TrainingState) -> None:
        state.model.load_state_dict(self.model)
        state.optimizer.load_state_dict(self.optimizer)
        torch.set_rng_state(self.rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state(self.cuda_rng, state.device)
        state.shuffle.set_state(self.shuffle)
        state.global_step = self.global_step


def _train_epoch(config: JobConfig, data: DeviceData, state: TrainingState, objective: Objective,
                 epoch: int, hooks: Hooks, past_deadline: Callable[[], bool]
                 ) -> tuple[str | None, int, torch.Tensor, torch.Tensor]:
    """One pass over the training data in a fresh random order. Returns why it stopped
    before the end (or None), the steps taken, the per-layer gradient norms summed over them,
    and the sums of the training-mode batch loss and of the L1/L2 penalty over them (kept on
    the device; the diagnosis weighs regularisation with them).

    The step takes no host sync (on a GPU each one would stall the device): whether a loss
    turned non-finite is read once, where the pass ends. When one did, the pass is taken again
    from where it began, reading every step's loss, so that the run stops at that very step,
    before its update, with the curves, probes, log and weights a per-step check gives (on CPU
    bit for bit). A diverging run pays for the pass twice, once; every other pays a copy of the
    weights and the optimizer's state per epoch."""
    start = _EpochStart(state)
    passed, checked = _train_pass(config, data, state, objective, epoch, hooks, past_deadline)
    if passed is not None:
        return passed
    start.restore(state)
    return _train_pass(config, data, state, objective, epoch, hooks, past_deadline, exact_after=checked)[0]


def _train_pass(config: JobConfig, data: DeviceData, state: TrainingState, objective: Objective,
                epoch: int, hooks: Hooks, past_deadline: Callable[[], bool], exact_after: int | None = None,
                ) -> tuple[tuple[str | None, int, torch.Tensor, torch.Tensor] | None, int]:
    """``_train_epoch``'s pass, and the number of batches whose stop check it passed. Its result
    is None when a loss turned non-finite (the state is then spoilt: non-finite updates were
    applied). With ``exact_after`` (the first pass's count) it reads every step's loss and stops
    at the first non-finite one, before its update, and does not ask again the stop checks of the
    batches the first pass took: they passed then, and the divergence lies among those batches
    (asked again, a deadline passed meanwhile would stop the pass before it)."""
    exact = exact_after is not None
    model, optimizer, probes = state.model, state.optimizer, state.probes
    weights = [layer.weight for _, layer in model.weight_layers()]
    l1, l2 = config.regularization.l1, config.regularization.l2
    skip_single = config.architecture.batch_norm  # batch norm cannot train on a batch of one
    batch_size, n = config.batch_size, data.x_train.shape[0]
    model.train()
    order = torch.randperm(n, generator=state.shuffle).to(state.device)
    grad_sums = torch.zeros(len(weights), device=state.device)
    # The training-mode batch loss and the penalty, summed: non-finite as soon as one loss is.
    objective_sums = torch.zeros(2, device=state.device)
    sampled: list[tuple[int, torch.Tensor, torch.Tensor]] = []  # the probes' steps: step, loss, norms
    if probes:
        probes.epoch_start(weights)
    steps, reason = 0, None
    for batch, start in enumerate(range(0, n, batch_size)):
        if not exact or batch >= exact_after:
            reason = hooks.stop_reason() or (TIME_LIMIT if past_deadline() else None)
            if reason:
                checked = batch
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
        objective_sums[0] += loss.detach()
        if penalty is not None:
            objective_sums[1] += penalty.detach()
        steps += 1
        state.global_step += 1
        if probes:
            probes.on_step(norms)
        if exact:
            loss_value = loss.item()
            if probes and (probes.sampled(state.global_step, steps) or not math.isfinite(loss_value)):
                probes.record_step(state.global_step, epoch, loss_value, norms)
            if not math.isfinite(loss_value):
                hooks.log(f"epoch {epoch}: the loss turned non-finite at step {steps}; training stops")
                return (DIVERGED, steps, grad_sums, objective_sums), batch
        elif probes and probes.sampled(state.global_step, steps):
            sampled.append((state.global_step, loss.detach(), norms))
        optimizer.step()
    else:
        checked = -(-n // batch_size)
    if not exact and not torch.isfinite(objective_sums[0]).item():  # a non-finite loss makes the sum non-finite
        return None, checked
    if probes and sampled:
        probes.record_steps(epoch, sampled)
    return (reason, steps, grad_sums, objective_sums), checked


def _evaluate_epoch(config: JobConfig, data: DeviceData, state: TrainingState,
                    objective: Objective) -> tuple[Evaluation, Evaluation]:
    """The network after an epoch on (the first EVAL_SAMPLE_LIMIT) training samples, whose first
    chunk is the probe batch, and on the validation split."""
    probe_activation = config.activation.name if state.probes else None
    train = evaluate(state.model, data.x_train_eval, data.y_train_eval, objective, probe_activation)
    return train, evaluate(state.model, data.x_val, data.y_val, objective)


def _curves_row(state: TrainingState, epoch: int, train: Evaluation, val: Evaluation, steps: int,
                grad_sums: torch.Tensor, objective_sums: torch.Tensor) -> dict:
    """The epoch's curves row: losses and metrics, learning rate, mean gradient norm per layer, probes,
    and the epoch's mean training-mode batch loss (dropout on, weights moving) and L1/L2 penalty."""
    layers = state.model.weight_layers()
    means = (torch.cat([grad_sums, objective_sums]) / max(steps, 1)).tolist()
    norms_mean, (batch_loss, penalty) = means[:-2], means[-2:]
    first, last = norms_mean[0], norms_mean[-1]
    row = {"epoch": epoch,
           "train_loss": _finite(train.loss), **{f"train_{k}": _finite(v) for k, v in train.metrics.items()},
           "val_loss": _finite(val.loss), **{f"val_{k}": _finite(v) for k, v in val.metrics.items()},
           "learning_rate": state.optimizer.param_groups[0]["lr"],
           "grad_norm": {name: _finite(v) for (name, _), v in zip(layers, norms_mean)},
           "train_batch_loss": _finite(batch_loss), "penalty": _finite(penalty)}
    if state.probes:
        row["grad_ratio"] = _finite(first / last) if last > 0 and math.isfinite(first) else None
        row.update(state.probes.epoch_values([layer.weight for _, layer in layers], train.activations))
    return row


def _best_epoch(state: TrainingState) -> int | None:
    if state.stopper:
        return state.stopper.best_epoch
    if not hasattr(state, "best_by_val_loss"):  # derived from the rows: not part of a checkpoint
        state.best_by_val_loss = _BestByValLoss()
    return state.best_by_val_loss.update(state.rows)


def _final_summary(data: DeviceData, state: TrainingState, objective: Objective,
                   reason: str | None) -> dict | None:
    """The summary of the epoch the run returns (the best one when early stopping restores
    it, whose weights it loads), with the test set's figures when there is one."""
    if not state.rows:
        return None
    returned, stopper = state.rows[-1], state.stopper
    if stopper and stopper.restore_best and stopper.best_state is not None:
        state.model.load_state_dict(stopper.best_state)
        returned = next(r for r in state.rows if r["epoch"] == stopper.best_epoch)
    summary = _summary(returned, objective, _best_epoch(state), len(state.rows), reason == EARLY_STOPPED)
    summary["returned_epoch"] = returned["epoch"]
    if data.x_test is not None:
        test = evaluate(state.model, data.x_test, data.y_test, objective)
        summary["test_loss"] = _finite(test.loss)
        summary.update({f"test_{k}": _finite(v) for k, v in test.metrics.items()})
    return summary


def run(config: JobConfig, data: DeviceData, hooks: Hooks | None = None,
        clock: Callable[[], float] = time.monotonic, deadline: float | None = None,
        resume: bytes | None = None) -> RunResult:
    """Train the network ``config`` describes; stop early for the reasons ``hooks`` gives,
    on the time limit, on early stopping, or as soon as the loss turns non-finite.

    ``deadline`` (on ``clock``) is when max_runtime_s runs out; the worker sets it from
    the job's start, so that setup counts. Without it the budget starts here, less the
    training time a resumed checkpoint had used. Each epoch's evaluation counts too: a
    step after it past the deadline stops the run.

    ``resume``, a checkpoint that ``hooks.checkpoint`` was given for this request, makes
    the run go on after the checkpoint's epoch k; on CPU it then ends exactly as the run
    that was never interrupted would have. ``hooks.on_epoch`` is not called again for
    epochs 1..k. Raises ``checkpoint.CheckpointError`` for a checkpoint it cannot use."""
    hooks = hooks or NoHooks()
    state = _start(config, data)
    objective = objective_for(config, data.target_std)
    if resume is not None:
        checkpoint.restore(resume, state, config)
    resumed_from = state.epoch if resume is not None else None
    started, earlier_s = clock(), state.train_s
    if deadline is None:
        deadline = started + config.max_runtime_s - earlier_s
    logged = ["train_loss", *(f"train_{m}" for m in objective.metrics_names),
              "val_loss", *(f"val_{m}" for m in objective.metrics_names)]

    reason: str | None = None
    for epoch in range(state.epoch + 1, config.epochs + 1):
        reason, steps, grad_sums, objective_sums = _train_epoch(config, data, state, objective, epoch, hooks,
                                                                lambda: clock() > deadline)
        if reason in (CANCELLED, SHUTDOWN) or (reason == TIME_LIMIT and steps == 0):
            break
        train, val = _evaluate_epoch(config, data, state, objective)
        row = _curves_row(state, epoch, train, val, steps, grad_sums, objective_sums)
        state.rows.append(row)
        state.epoch = epoch
        stop = state.stopper.update(epoch, row, state.model) if state.stopper else False
        hooks.on_epoch(row, _summary(row, objective, _best_epoch(state), len(state.rows), False), state.probes)
        hooks.log(f"epoch {epoch}: " + " ".join(f"{key}={_format(row[key])}" for key in logged))
        if reason:
            break
        if stop:
            reason = EARLY_STOPPED
            hooks.log(f"early stopping at epoch {epoch}: no improvement of {state.stopper.monitor} for "
                      f"{state.stopper.patience} epochs (best epoch {state.stopper.best_epoch})")
            break
        if epoch < config.epochs and hooks.checkpoint_due(epoch):
            state.train_s = earlier_s + clock() - started
            hooks.checkpoint(epoch, checkpoint.capture(state, config))
    state.train_s = earlier_s + clock() - started
    summary = _final_summary(data, state, objective, reason)
    return RunResult(state.model, state.rows, summary, reason, state.train_s, state.probes, resumed_from)
