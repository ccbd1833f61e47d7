"""Symptoms seen while training: the causes the recipe's step 1 looks for.

Each rule reads a Run and returns a finding (severity decided later, by
whether the network fitted its training data) or None.
"""

from __future__ import annotations

import math

from workers.diagnosis import patches as P
from workers.diagnosis import thresholds as T
from workers.diagnosis.evidence import Run, finite, layer_label, median
from workers.diagnosis.findings import WARNING, finding

ADAPTIVE = ("adam", "adamw", "rmsprop", "adagrad")


def _first_epoch(flags: list[bool], rows: list[dict]) -> int | None:
    return next((row["epoch"] for row, flag in zip(rows, flags) if flag), None)


def _step_cut(config) -> float:
    """How many times smaller the effective step lr / (1 - momentum) gets with P.smaller_steps."""
    momentum = config.optimizer.momentum or 0.0
    return (1 - T.LOWER_MOMENTUM) / (T.TOO_HIGH_LR_FACTOR * (1 - momentum)) if momentum < 1 else math.inf


def exploding_gradient(run: Run) -> dict | None:
    steps = run.steps or {}
    norms, losses = steps.get("grad_norm", []), steps.get("loss", [])
    # The first sampled step is measured before any update: the baseline an explosion is judged by.
    start_norm = norms[0] if norms and norms[0] is not None and norms[0] > 0 else None
    max_norm = max(finite(norms), default=None)
    growth = max_norm / start_norm if max_norm is not None and start_norm else None
    max_loss = max(finite(losses), default=None)
    loss_factor = max_loss / run.initial_loss if max_loss is not None and run.initial_loss else None
    nonfinite = run.diverged or any(v is None for v in norms) or any(v is None for v in losses)
    exploded = (growth is not None and growth >= T.EXPLODING_GROWTH) or (
        loss_factor is not None and loss_factor >= T.EXPLODING_LOSS_FACTOR)
    if not (nonfinite or exploded):
        return None
    epoch = None
    if nonfinite:
        epoch = _first_epoch([bool(r.get("nonfinite")) or r.get("train_loss") is None for r in run.rows],
                             run.rows)
    if epoch is None and steps.get("epoch"):
        peak = max(range(len(norms)), key=lambda i: norms[i] if norms[i] is not None else math.inf)
        epoch = steps["epoch"][peak]
    evidence = {"non_finite": nonfinite, "initial_grad_norm": start_norm, "max_step_grad_norm": max_norm,
                "grad_norm_growth": growth, "threshold": T.EXPLODING_GROWTH, "initial_loss": run.initial_loss,
                "max_step_loss": max_loss, "loss_threshold_factor": T.EXPLODING_LOSS_FACTOR}
    what = ("the loss or the gradients turned NaN/Inf, so training stopped there" if nonfinite else
            f"the total gradient norm grew {growth:,.0f}-fold within training" if growth and growth >= T.EXPLODING_GROWTH
            else f"a batch loss reached {loss_factor:,.0f} times its starting value")
    config = run.config
    opt = config.optimizer.name
    return finding(
        "exploding_gradient", WARNING, epoch, evidence,
        f"The updates blew up: {what}. Steps that large throw the weights far from where the gradient was "
        "measured; afterwards units can die and the loss stays at or above chance. The learning rate is too "
        "high for this network and optimizer.",
        [P.suggestion(P.smaller_steps(config, T.TOO_HIGH_LR_FACTOR, T.HIGH_MOMENTUM, T.LOWER_MOMENTUM),
                      f"A 10 times smaller learning rate and momentum {T.LOWER_MOMENTUM}: with momentum "
                      f"{config.optimizer.momentum} the effective step lr / (1 - momentum) shrinks "
                      f"{_step_cut(config):.0f}-fold, while a smaller rate alone leaves the momentum "
                      "amplifying every overshoot."),
         P.suggestion(P.learning_rate(config, 0.01), "A learning rate 100 times smaller keeps each step "
                      "within the region where the gradient is a good guide."),
         P.suggestion(P.optimizer(config, "adam") if opt not in ADAPTIVE else P.learning_rate(config, 0.1),
                      "Adam scales each step by a running gradient magnitude, which bounds the step size."
                      if opt not in ADAPTIVE else "A 10 times smaller learning rate for the adaptive optimizer."),
         P.suggestion(P.lower_momentum(config, T.LOWER_MOMENTUM), "Lower momentum shrinks the effective step, "
                      "lr / (1 - momentum).")])


def learning_rate_too_high(run: Run, fitted: bool) -> dict | None:
    """Steps too large for the network without a numeric explosion: after the first epoch the
    weights are mostly that epoch's change. Judged only on a run that does not fit its training
    data (the over-regularised rule, which also sees large updates as weights shrink, is asked
    first)."""
    if fitted or run.diverged or not run.rows:
        return None
    ratio = median((run.rows[0].get("update_ratio") or {}).values())
    if ratio is None or ratio < T.HUGE_UPDATE_RATIO:
        return None
    config = run.config
    opt, lr = config.optimizer.name, config.optimizer.learning_rate
    momentum = config.optimizer.momentum
    fixes = [P.suggestion(P.smaller_steps(config, T.TOO_HIGH_LR_FACTOR, T.HIGH_MOMENTUM, T.LOWER_MOMENTUM),
                          f"A 10 times smaller learning rate and momentum {T.LOWER_MOMENTUM}: the effective step "
                          f"lr / (1 - momentum) shrinks {_step_cut(config):.0f}-fold; with the rate alone the "
                          "momentum keeps amplifying every overshoot."),
             P.suggestion(P.learning_rate(config, T.TOO_HIGH_LR_FACTOR), "A 10 times smaller learning rate: "
                          "each step then stays where the gradient it follows was measured."),
             P.suggestion(P.lower_momentum(config, T.LOWER_MOMENTUM) if momentum and momentum >= T.HIGH_MOMENTUM
                          else None, f"Momentum {momentum} multiplies the effective step by "
                          f"{1 / (1 - momentum) if momentum and momentum < 1 else 1:.0f}; "
                          f"momentum {T.LOWER_MOMENTUM} brings it to {1 / (1 - T.LOWER_MOMENTUM):.0f}."),
             P.suggestion(P.optimizer(config, "adam") if opt not in ADAPTIVE else P.learning_rate(config, 0.01),
                          "Adam bounds each parameter's step by its running gradient magnitude."
                          if opt not in ADAPTIVE else "A 100 times smaller learning rate for the adaptive "
                          "optimizer.")]
    return finding(
        "learning_rate_too_high", WARNING, run.rows[0]["epoch"],
        {"first_epoch_update_ratio": ratio, "threshold": T.HUGE_UPDATE_RATIO, "learning_rate": lr,
         "momentum": momentum},
        f"The steps are too large: after the first epoch {ratio:.0%} of the weights' norm (median over layers) "
        f"is that epoch's change, so the initialisation was thrown away at once (learning rate {lr:g} with "
        f"{opt}{f', momentum {momentum:g}' if momentum else ''}). Steps this large overshoot, and push ReLU "
        "units into the region where they never activate again.", fixes)


def _shrinks_toward_input(run: Run) -> float:
    """Share of neighbouring weight layers whose (median) gradient norm is smaller nearer the input."""
    norms = [median(run.layer_series("grad_norm", layer)) for layer in run.layers]
    pairs = [(a, b) for a, b in zip(norms, norms[1:]) if a is not None and b is not None]
    return sum(1 for a, b in pairs if a < b) / len(pairs) if pairs else 0.0


def vanishing_gradient(run: Run, fitted: bool) -> dict | None:
    if len(run.layers) < 3:  # needs two hidden layers to shrink through
        return None
    first, last = run.layers[0], run.layers[-1]
    ratios = [a / b if a is not None and b else None
              for a, b in zip(run.layer_series("grad_norm", first), run.layer_series("grad_norm", last))]
    ratio = median(ratios)
    if ratio is None:
        return None
    monotone = _shrinks_toward_input(run)
    strong = ratio < T.VANISHING_RATIO
    # A milder, steady shrink explains a network that does not fit its training data.
    corroborated = (not fitted and len(run.layers) - 1 >= T.VANISHING_MIN_DEPTH_MILD
                    and ratio < T.VANISHING_RATIO_MILD and monotone >= T.VANISHING_MONOTONE_SHARE)
    if not (strong or corroborated):
        return None
    config = run.config
    act = config.activation.name
    arch = config.architecture
    last_row = run.rows[-1]["grad_norm"]
    threshold = T.VANISHING_RATIO if strong else T.VANISHING_RATIO_MILD
    evidence = {"first_to_last_grad_ratio": ratio, "threshold": threshold,
                "first_layer_grad_norm": last_row.get(first), "last_layer_grad_norm": last_row.get(last),
                "share_of_layers_shrinking": monotone, "hidden_layers": len(run.layers) - 1}
    he_init = {} if arch.init.startswith("kaiming") else {"init": "kaiming_normal"}
    fixes = []
    if act in ("sigmoid", "tanh") and not arch.batch_norm:
        # Both of the recipe's remedies at once: on the seen deep sigmoid/tanh stacks, ReLU + He
        # fixed 4 of 5 and batch norm 4 of 5 (each missed a different one); together, 5 of 5.
        fixes.append(P.suggestion({**P.activation(config, "relu"), "architecture": {**he_init, "batch_norm": True}},
                                  "ReLU with He initialisation and batch norm: ReLU passes the gradient unchanged "
                                  "through every active unit, and batch norm keeps each layer's inputs at a scale "
                                  "where a deep stack still trains in few epochs."))
    if act in ("sigmoid", "tanh"):
        fixes.append(P.suggestion({**P.activation(config, "relu"), **({"architecture": he_init} if he_init else {})},
                                  "ReLU passes the gradient unchanged through every active unit, so it does not "
                                  "shrink layer by layer" + ("; He (Kaiming) initialisation keeps the signal's "
                                                             "scale through a deep ReLU stack." if he_init else ".")))
    elif he_init:
        fixes.append(P.suggestion(P.architecture(**he_init), "He (Kaiming) initialisation sizes each layer for "
                                  "ReLU-family units, so signal and gradient keep their scale through the depth."))
    if not arch.batch_norm:
        fixes.append(P.suggestion(P.architecture(batch_norm=True), "Batch norm rescales each layer's inputs, "
                                  "which keeps gradients from shrinking with depth."))
    if act == "tanh" and arch.init != "xavier_normal":
        fixes.append(P.suggestion(P.architecture(init="xavier_normal"), "Xavier initialisation keeps tanh units "
                                  "in their responsive range through the depth."))
    if act in ("sigmoid", "tanh"):
        fixes.append(P.suggestion({**P.activation(config, "leaky_relu"),
                                   **({"architecture": he_init} if he_init else {})},
                                  "Leaky ReLU also keeps a small gradient for negative inputs."))
        fixes.append(P.suggestion({**P.activation(config, "maxout"),
                                   **({"architecture": he_init} if he_init else {})},
                                  "Maxout is a learnable piecewise-linear activation (ReLU is a special case)."))
    if not arch.residual and P.residual_applies(config):
        fixes.append(P.suggestion(P.architecture(residual=True), "Skip connections give the gradient a path "
                                  "to the early layers that bypasses the activations."))
    fixes.append(P.suggestion(P.shallower(config), "Fewer layers for the gradient to cross."))
    return finding(
        "vanishing_gradient", WARNING, _first_epoch([r is not None and r < threshold for r in ratios], run.rows),
        evidence,
        f"Gradients shrink layer by layer toward the input: the first layer's gradient norm is {ratio:.1e} "
        f"times the last layer's (threshold {threshold:g}), and it is smaller nearer the input for "
        f"{monotone:.0%} of neighbouring layers. The layers near the input learn very slowly while those near "
        f"the output settle on features of a nearly random input: with {act}"
        + (" every layer multiplies the gradient by a derivative well below 1 (the recipe's deep-sigmoid case)."
           if act in ("sigmoid", "tanh") else " and this initialisation the signal fades with depth."),
        fixes)


def dead_relu(run: Run) -> dict | None:
    if run.config.activation.name != "relu":
        return None
    last = run.rows[-1] if run.rows else {}
    fractions = last.get("dead_fraction") or {}
    worst = max(((k, v) for k, v in fractions.items() if v is not None), key=lambda kv: kv[1], default=None)
    if worst is None or worst[1] <= T.DEAD_FRACTION:
        return None
    config = run.config
    layer_index = list(fractions).index(worst[0]) + 1  # counted from the input, conv layers included
    flags = [max(finite((r.get("dead_fraction") or {}).values()), default=0) > T.DEAD_FRACTION for r in run.rows]
    return finding(
        "dead_relu", WARNING, _first_epoch(flags, run.rows),
        {"dead_fraction": worst[1], "threshold": T.DEAD_FRACTION, "hidden_layer": layer_index,
         "layers_over_threshold": sum(1 for v in fractions.values() if v is not None and v > T.DEAD_FRACTION)},
        f"{worst[1]:.0%} of the ReLU {'channels' if worst[0].startswith('conv') else 'units'} in "
        f"{layer_label(worst[0])} never activate on a batch of training samples. A ReLU that "
        "is negative for every input has a zero gradient and never recovers, so that "
        "part of the network has stopped learning; a too-large step usually pushed it there.",
        [P.suggestion(P.activation(config, "leaky_relu"), "Leaky ReLU keeps a small slope below zero, so a "
                      "unit pushed negative still gets a gradient and can come back."),
         P.suggestion(P.activation(config, "prelu"), "PReLU learns that slope."),
         P.suggestion(P.learning_rate(config, 0.1), "Smaller steps are less likely to push units into the "
                      "dead region.")])


def saturated_activation(run: Run) -> dict | None:
    act = run.config.activation.name
    if act not in ("sigmoid", "tanh") or not run.rows:
        return None
    fractions = run.rows[-1].get("saturated_fraction") or {}
    worst = max(((k, v) for k, v in fractions.items() if v is not None), key=lambda kv: kv[1], default=None)
    if worst is None or worst[1] <= T.SATURATED_FRACTION:
        return None
    arch = run.config.architecture
    layer_index = list(fractions).index(worst[0]) + 1
    flags = [max(finite((r.get("saturated_fraction") or {}).values()), default=0) > T.SATURATED_FRACTION
             for r in run.rows]
    fixes = [P.suggestion(P.activation(run.config, "relu"), "ReLU does not saturate for positive inputs.")]
    if not arch.batch_norm:
        fixes.append(P.suggestion(P.architecture(batch_norm=True), "Batch norm keeps pre-activations near "
                                  "zero, in the responsive range."))
    if arch.init != "xavier_normal":
        fixes.append(P.suggestion(P.architecture(init="xavier_normal"), "Xavier initialisation sizes the "
                                  "weights so that pre-activations start in the responsive range."))
    return finding(
        "saturated_activation", WARNING, _first_epoch(flags, run.rows),
        {"saturated_fraction": worst[1], "threshold": T.SATURATED_FRACTION, "hidden_layer": layer_index},
        f"{worst[1]:.0%} of the {act} pre-activations in {layer_label(worst[0])} sit on the flat ends of "
        f"the curve, where the output is within 1% of its bound and the derivative is below 0.01; gradients "
        "through those units all but vanish.", fixes)


def poor_weight_initialization(run: Run) -> dict | None:
    variances = list(((run.initial or {}).get("activation_variance") or {}).values())
    if len(variances) < 3 or not variances[0] or variances[-1] is None:
        return None
    ratio = variances[-1] / variances[0]
    if 1 / T.INIT_VARIANCE_RATIO <= ratio <= T.INIT_VARIANCE_RATIO:
        return None
    arch = run.config.architecture
    act = run.config.activation.name
    scheme = P.init_for(act)
    direction = "collapses" if ratio < 1 else "explodes"
    fixes = []
    if arch.init != scheme:
        fixes.append(P.suggestion(P.architecture(init=scheme), f"{scheme} scales each layer's weights by its "
                                  f"fan-in so that activation variance is kept through the depth for {act}."))
    if not arch.batch_norm:
        fixes.append(P.suggestion(P.architecture(batch_norm=True), "Batch norm re-normalises every layer."))
    return finding(
        "poor_weight_initialization", WARNING, 0,
        {"last_to_first_activation_variance": ratio, "threshold": T.INIT_VARIANCE_RATIO,
         "first_layer_variance": variances[0], "last_layer_variance": variances[-1],
         "hidden_layers": len(variances)},
        f"At the start of training the activation variance {direction} through the network: the last hidden "
        f"layer's is {ratio:.1e} times the first's. Signals (and gradients) then start either vanishingly "
        "small or huge in the deep layers.", fixes)


def slow_convergence(run: Run, fitted: bool) -> dict | None:
    losses = run.series("train_loss")
    values = finite(losses)
    if not values or run.initial_loss is None or run.diverged:
        return None
    start, best, last = run.initial_loss, min(values), values[-1]
    decrease = (start - best) / start if start > 0 else 0.0
    tail = values[-3:]
    per_epoch = (tail[0] - tail[-1]) / tail[0] / (len(tail) - 1) if len(tail) >= 2 and tail[0] > 0 else 0.0
    stuck = decrease < T.SLOW_MIN_DECREASE
    still_falling = not fitted and per_epoch > T.STILL_FALLING_PER_EPOCH
    if not (stuck or still_falling):
        return None
    config = run.config
    opt, lr = config.optimizer.name, config.optimizer.learning_rate
    update = median(finite(v for r in run.rows for v in (r.get("update_ratio") or {}).values()))
    evidence = {"initial_loss": start, "final_train_loss": last, "relative_decrease": decrease,
                "threshold": T.SLOW_MIN_DECREASE, "recent_decrease_per_epoch": per_epoch,
                "median_update_ratio": update, "learning_rate": lr}
    fixes = [P.suggestion(P.raise_learning_rate(config), "A larger learning rate (at least 10 times, and at "
                          f"least the rate that usually trains small networks with {opt}) takes steps that "
                          "actually move the weights.")]
    if opt not in ("adam", "adamw"):
        fixes.append(P.suggestion(P.optimizer(config, "adam"), "Adam adapts the step size per parameter and "
                                  "adds momentum, so it does not depend on a well-tuned global rate."))
    fixes.append(P.suggestion(P.combine(P.raise_learning_rate(config), P.epochs(config)),
                              "The larger learning rate, and three times the epochs to make up for the ones "
                              "spent barely moving."))
    if opt == "sgd":
        fixes.append(P.suggestion(P.optimizer(config, "momentum", learning_rate=lr),
                                  "Momentum accumulates past steps and rolls through plateaus."))
    fixes.append(P.suggestion(P.batch_size(config, 0.25), "Smaller batches take four times as many steps per "
                              "epoch."))
    if still_falling and not stuck:
        fixes.insert(0, P.suggestion(P.epochs(config), "The loss was still falling when training ended: "
                                     "train longer."))
        text = (f"The training loss was still falling by {per_epoch:.1%} an epoch when training ended, before the "
                "network fitted its training data: it needs more or larger steps.")
    else:
        text = (f"The training loss barely moved: from {start:.3g} to at best {best:.3g} "
                f"({decrease:.1%}, threshold {T.SLOW_MIN_DECREASE:.0%}). The steps are too small to make "
                "progress (a learning rate too low for this optimizer).")
    return finding("slow_convergence", WARNING, run.rows[-1]["epoch"], evidence, text, fixes)


def oscillating_loss(run: Run) -> dict | None:
    """Judged on the fit metric (accuracy, or R² for regression): both run from chance to 1."""
    acc = finite(run.fit_series)
    if len(acc) < T.OSCILLATION_MIN_EPOCHS:
        return None
    swings = 0
    for prev, cur, nxt in zip(acc, acc[1:], acc[2:]):
        is_peak = cur > prev and cur > nxt
        is_trough = cur < prev and cur < nxt
        if (is_peak or is_trough) and min(abs(cur - prev), abs(cur - nxt)) >= T.OSCILLATION_GAP:
            swings += 1
    needed = max(2, math.ceil(T.OSCILLATION_SHARE * len(acc)))
    if swings < needed:
        return None
    config = run.config
    return finding(
        "oscillating_loss", WARNING, run.rows[-1]["epoch"],
        {"swings": swings, "threshold": needed, "swing_size": T.OSCILLATION_GAP, "epochs": len(acc)},
        f"The training {run.metric_label} zig-zags: {swings} peaks or troughs of at least "
        f"{T.OSCILLATION_GAP:g} over "
        f"{len(acc)} epochs. The optimizer overshoots the minimum back and forth.",
        [P.suggestion(P.learning_rate(config, 0.3), "A smaller learning rate stops the overshooting."),
         P.suggestion(P.optimizer(config, "adam") if config.optimizer.name not in ("adam", "adamw")
                      else None, "Adam's momentum and per-parameter scaling damp the zig-zag.")])


def class_imbalance(run: Run) -> dict | None:
    if run.regression:  # no classes
        return None
    counts = [c for c in run.class_counts.values() if c > 0]
    if len(counts) < 2 or max(counts) / min(counts) < T.IMBALANCE_RATIO:
        return None
    return finding(
        "class_imbalance", WARNING, 0,
        {"largest_class": max(counts), "smallest_class": min(counts), "ratio": max(counts) / min(counts),
         "threshold": T.IMBALANCE_RATIO, "chance_accuracy": run.chance},
        f"The largest training class has {max(counts) / min(counts):.0f} times as many samples as the smallest: "
        f"always answering the largest class already scores {run.chance:.0%}, so accuracy flatters the model.",
        [])


def unnormalized_input(run: Run) -> dict | None:
    """Uploaded data used as given whose inputs are far from order 1 or on very different scales."""
    dataset = run.config.dataset
    if dataset.id is None or dataset.scale != "none":
        return None
    stats = (run.data_info or {}).get("input_stats") or {}
    abs_max, std_min, std_max = stats.get("abs_max"), stats.get("std_min"), stats.get("std_max")
    if abs_max is None or std_max is None:
        return None
    spread = std_max / std_min if std_min else math.inf
    large = abs_max > T.UNNORMALIZED_ABS_MAX
    uneven = spread > T.UNNORMALIZED_STD_SPREAD and std_max > 1.0
    if not (large or uneven):
        return None
    return finding(
        "unnormalized_input", WARNING, 0,
        {"input_abs_max": abs_max, "threshold": T.UNNORMALIZED_ABS_MAX, "feature_std_min": std_min,
         "feature_std_max": std_max, "feature_std_spread": spread if math.isfinite(spread) else None,
         "spread_threshold": T.UNNORMALIZED_STD_SPREAD},
        f"The uploaded inputs are used as given, and they are badly scaled: the largest magnitude is {abs_max:.3g} "
        f"and the features' standard deviations range from {std_min:.3g} to {std_max:.3g}. Large inputs "
        "saturate units and make gradients huge for some weights and tiny for others, so one learning rate "
        "cannot suit them all.",
        [P.suggestion({"dataset": {"scale": "standard"}}, "Standardise each feature with the training split's "
                      "mean and standard deviation (the exported model applies the same scaling)."),
         P.suggestion({"dataset": {"scale": "minmax"}}, "Or rescale each feature to [0, 1] with the training "
                      "split's minimum and maximum.")])
