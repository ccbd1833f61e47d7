"""The recipe's lessons as sweeps, and how to read each one's results (used by examples/recipe.py).

Each lesson is one sweep body (``POST /v1/sweeps``) and a reading: a function of the measured
results that writes the lesson's sentence. A reading never states the lesson as a fact: it
compares the rows, calls a difference clear only when it is beyond the seed spread
(``clear``), and says so when the numbers do not show what the recipe predicts.

The configurations were chosen by training them in-process through the engine on a 2-core CPU:
each showed its effect beyond the spread of two seeds there. They are sized for about ten
minutes of training with one worker on an idle 2-core machine (58 runs, all small MLPs on
digits or 1000 MNIST-1D samples); a machine busy with other work takes several times longer.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Callable

# A difference of means is clear when it exceeds both this many pooled standard deviations of
# the seeds and the floor (one point of accuracy, 0.01 of loss): two seeds give a rough spread.
SPREAD_FACTOR = 2.0
NOISE_FLOOR = 0.01


@dataclass(frozen=True)
class Plot:
    """One figure of a lesson: ``metric`` per epoch for the first seed of the rows ``rows`` keeps."""

    name: str
    metric: str
    caption: str
    rows: Callable[[dict], bool] = lambda row: True


@dataclass
class Outcome:
    """What a reading gets: the sweep's results rows and comparison, and each finished child's
    summary by job id (for what the rows do not hold, e.g. how many epochs a run trained)."""

    rows: list[dict]
    comparison: dict
    summaries: dict[str, dict] = field(default_factory=dict)


@dataclass(frozen=True)
class Lesson:
    key: str
    title: str
    recipe: str  # what the lecture says, in one or two sentences
    sweep: dict  # the POST /v1/sweeps body
    reading: Callable[[dict, Outcome], str]
    plots: tuple[Plot, ...]

    def body(self, quick: bool) -> dict:
        """The sweep body; ``quick`` keeps two values per grid path, one seed and two epochs (a smoke test)."""
        if not quick:
            return copy.deepcopy(self.sweep)
        body = copy.deepcopy(self.sweep)
        body["base"]["epochs"] = min(body["base"].get("epochs", 20), 2)
        body["grid"] = {path: values[:2] for path, values in body["grid"].items()}
        body["seeds"] = body["seeds"][:1]
        return body


# --- reading the rows ----------------------------------------------------------------------------

def stat(row: dict, metric: str) -> dict | None:
    """``{"mean", "std", "n"}`` of a metric in a results row, or None when no child finished."""
    value = (row.get("metrics") or {}).get(metric)
    return value if value and value.get("n") and value.get("mean") is not None else None


def clear(a: dict | None, b: dict | None) -> bool:
    """Whether two metric stats differ beyond the seeds' spread (see SPREAD_FACTOR)."""
    if a is None or b is None:
        return False
    pooled = math.sqrt(((a.get("std") or 0.0) ** 2 + (b.get("std") or 0.0) ** 2) / 2)
    return abs(a["mean"] - b["mean"]) > max(SPREAD_FACTOR * pooled, NOISE_FLOOR)


def pct(value: dict | None) -> str:
    return "n/a" if value is None else f"{100 * value['mean']:.1f}%"


def num(value: dict | None) -> str:
    return "n/a" if value is None else f"{value['mean']:.3f}"


def points(a: dict, b: dict) -> str:
    """The difference b - a in points of accuracy, and whether it is beyond the spread."""
    diff = 100 * (b["mean"] - a["mean"])
    return f"{diff:+.1f} points{'' if clear(a, b) else ', within the seed spread'}"


def find(rows: list[dict], **values: Any) -> dict | None:
    """The row whose varied values include ``values`` (keys are grid paths with '.' as '__')."""
    wanted = {path.replace("__", "."): value for path, value in values.items()}
    for row in rows:
        if all(row["values"].get(path) == value for path, value in wanted.items()):
            return row
    return None


def depth(layers: list) -> int:
    return len(layers)


METRICS = ("train_loss", "val_loss", "train_accuracy", "val_accuracy")


def missing(rows: list[dict]) -> str | None:
    """A sentence when some row lacks a metric (no finished child, or a run that diverged):
    then the lesson cannot be read from the rows, and the page says so rather than guess."""
    empty = [row for row in rows if any(stat(row, metric) is None for metric in METRICS)]
    if empty:
        return (f"{len(empty)} of {len(rows)} combinations lack a finished run's metrics, so the lesson cannot be "
                "read from this page; see the table.")
    return None


def regularizer_label(value: dict) -> str:
    used = [f"{key}={value[key]:g}" for key in ("l1", "l2", "dropout") if value.get(key)]
    return " + ".join(used) or "none"


# --- the lessons -----------------------------------------------------------------------------------

DIGITS = {"name": "digits"}
SMALL_MNIST1D = {"name": "mnist1d", "train_samples": 1000}  # an MLP overfits it within about ten epochs
ACTIVATIONS = ["sigmoid", "relu", "leaky_relu", "prelu", "maxout"]
SHALLOW, DEEP = [32], [32] * 8


def read_activations(body: dict, out: Outcome) -> str:
    rows = out.rows
    gap = missing(rows)
    if gap:
        return gap
    shallow, deep = body["grid"]["architecture.hidden_layers"][0], body["grid"]["architecture.hidden_layers"][-1]
    parts, others_fit = [], True
    sigmoid_deep = stat(find(rows, activation="sigmoid", architecture__hidden_layers=deep), "train_accuracy")
    sigmoid_shallow = stat(find(rows, activation="sigmoid", architecture__hidden_layers=shallow), "train_accuracy")
    for name in body["grid"]["activation"]:
        a = stat(find(rows, activation=name, architecture__hidden_layers=shallow), "train_accuracy")
        b = stat(find(rows, activation=name, architecture__hidden_layers=deep), "train_accuracy")
        parts.append(f"{name} {pct(a)} → {pct(b)}")
        if name != "sigmoid":
            others_fit = others_fit and b["mean"] > sigmoid_deep["mean"] and clear(b, sigmoid_deep)
    head = (f"Training accuracy from {depth(shallow)} to {depth(deep)} hidden layers: " + ", ".join(parts) + ". ")
    sigmoid_breaks = sigmoid_deep["mean"] < sigmoid_shallow["mean"] and clear(sigmoid_shallow, sigmoid_deep)
    if sigmoid_breaks and others_fit:
        return head + ("Depth breaks sigmoid on its own training data, while every ReLU-family activation trains "
                       "the deep network clearly better than sigmoid does: the vanishing gradient, and its remedy.")
    return head + ("On this run the lesson does not show cleanly: "
                   + ("sigmoid did not lose training accuracy with depth beyond the seed spread" if not sigmoid_breaks
                      else "not every ReLU-family activation beat the deep sigmoid network beyond the seed spread")
                   + ".")


def read_optimizers(body: dict, out: Outcome) -> str:
    rows = out.rows
    gap = missing(rows)
    if gap:
        return gap
    by_name = {row["values"]["optimizer"]: row for row in rows}
    best = min(rows, key=lambda row: stat(row, "train_loss")["mean"])
    sgd = by_name.get("sgd")
    text = (f"After {body['base']['epochs']} epochs, each at its default learning rate, "
            f"{best['values']['optimizer']} reached the lowest training loss ({num(stat(best, 'train_loss'))}, "
            f"{pct(stat(best, 'train_accuracy'))} training accuracy)")
    if sgd is None:
        return text + "."
    sgd_loss = stat(sgd, "train_loss")
    beat = [name for name, row in by_name.items() if name != "sgd"
            and stat(row, "train_loss")["mean"] < sgd_loss["mean"] and clear(stat(row, "train_loss"), sgd_loss)]
    rest = [name for name in by_name if name not in beat and name != "sgd"]
    text += (f"; plain SGD ended at {num(sgd_loss)} ({pct(stat(sgd, 'train_accuracy'))}). "
             f"Beyond the seed spread, {', '.join(beat) or 'none'} trained faster than plain SGD")
    return text + (f"; {', '.join(rest)} did not." if rest else ": momentum and adaptive learning rates both help.")


def read_early_stopping(body: dict, out: Outcome) -> str:
    rows = out.rows
    gap = missing(rows)
    if gap:
        return gap
    without = next((row for row in rows if row["values"].get("patience") is None), None)
    with_ = next((row for row in rows if row["values"].get("patience") is not None), None)
    if without is None or with_ is None:
        return "This run lacks the row with or without patience, so there is nothing to compare."

    def ran(row: dict) -> str:
        epochs = [out.summaries[j]["epochs_run"] for j in row["job_ids"] if j in out.summaries]
        return f"{sum(epochs) / len(epochs):.0f}" if epochs else "n/a"

    a, b = stat(without, "val_loss"), stat(with_, "val_loss")
    text = (f"Without patience the run trained all {ran(without)} epochs and returned the last one: training "
            f"accuracy {pct(stat(without, 'train_accuracy'))}, validation loss {num(a)}. With patience "
            f"{with_['values']['patience']} it stopped after {ran(with_)} epochs and returned its best epoch, "
            f"validation loss {num(b)}")
    accuracy = (f" Validation accuracy: {pct(stat(without, 'val_accuracy'))} without patience, "
                f"{pct(stat(with_, 'val_accuracy'))} with it "
                f"({points(stat(without, 'val_accuracy'), stat(with_, 'val_accuracy'))}).")
    if b["mean"] < a["mean"] and clear(a, b):
        return text + (f", {a['mean'] - b['mean']:.3f} lower: stopping where the validation loss is lowest keeps "
                       "the model from the epochs where it overfits." + accuracy)
    return text + (": no clear difference on this run (the longer run did not overfit beyond the seed spread)."
                   + accuracy)


REGULARIZERS = [{"l1": 0, "l2": 0, "dropout": 0}, {"l1": 0.001, "l2": 0, "dropout": 0},
                {"l1": 0, "l2": 0.01, "dropout": 0}, {"l1": 0, "l2": 0, "dropout": 0.5}]
BIG, TINY = [256, 256], [16]  # on 1000 MNIST-1D samples: one overfits within ten epochs, the other cannot fit


def read_regularization(body: dict, out: Outcome) -> str:
    rows = out.rows
    gap = missing(rows)
    if gap:
        return gap
    big, tiny = body["grid"]["architecture.hidden_layers"][0], body["grid"]["architecture.hidden_layers"][-1]
    none, *used = body["grid"]["regularization"]

    def cell(net: list, reg: dict, metric: str) -> dict:
        return stat(find(rows, regularization=reg, architecture__hidden_layers=net), metric)

    def loss_change(a: dict, b: dict) -> str:
        return f"{num(a)} → {num(b)}{'' if clear(a, b) else ' (within the seed spread)'}"

    base_loss, base_val, base_train = (cell(big, none, m) for m in ("val_loss", "val_accuracy", "train_accuracy"))
    effects = [f"{regularizer_label(reg)}: validation loss {loss_change(base_loss, cell(big, reg, 'val_loss'))}, "
               f"validation accuracy {points(base_val, cell(big, reg, 'val_accuracy'))}, training accuracy "
               f"{points(base_train, cell(big, reg, 'train_accuracy'))}" for reg in used]
    lowered_val_loss = [reg for reg in used if cell(big, reg, "val_loss")["mean"] < base_loss["mean"]
                        and clear(base_loss, cell(big, reg, "val_loss"))]
    text = (f"On {body['base']['dataset'].get('train_samples') or 'all'} training samples the {big} network fits "
            f"its training data ({pct(base_train)}) but not the validation data ({pct(base_val)}, validation loss "
            f"{num(base_loss)}). " + "; ".join(effects) + ". "
            + (f"{', '.join(regularizer_label(r) for r in lowered_val_loss)} lowered the validation loss beyond the "
               "seed spread. " if lowered_val_loss else
               "No regularizer lowered the validation loss beyond the seed spread. "))
    tiny_train = cell(tiny, none, "train_accuracy")
    hurt = [(reg, cell(tiny, reg, "train_accuracy")) for reg in used]
    text += (f"The {tiny} network does not fit ({pct(tiny_train)} training accuracy); the same regularizers change "
             "its training accuracy by: "
             + "; ".join(f"{regularizer_label(reg)} {points(tiny_train, value)}" for reg, value in hurt) + ". ")
    lowered = [reg for reg, value in hurt if value["mean"] < tiny_train["mean"] and clear(tiny_train, value)]
    if lowered:
        return text + (f"{', '.join(regularizer_label(r) for r in lowered)} made its training fit worse: "
                       "regularization is a remedy for overfitting, not for a network that cannot fit.")
    return text + "On this run no regularizer hurt the small network's training fit beyond the seed spread."


def read_degradation(body: dict, out: Outcome) -> str:
    rows = out.rows
    gap = missing(rows)
    if gap:
        return gap
    shallow, deep = body["grid"]["architecture.hidden_layers"][0], body["grid"]["architecture.hidden_layers"][-1]

    def acc(layers: list, residual: bool) -> dict:
        return stat(find(rows, architecture__hidden_layers=layers, architecture__residual=residual), "train_accuracy")

    plain_s, plain_d = acc(shallow, False), acc(deep, False)
    text = (f"Without residual connections, {depth(deep)} hidden layers reach {pct(plain_d)} training accuracy "
            f"against {pct(plain_s)} for {depth(shallow)} ({points(plain_s, plain_d)})")
    if True in body["grid"].get("architecture.residual", []):
        res_s, res_d = acc(shallow, True), acc(deep, True)
        text += (f"; with them, {pct(res_d)} against {pct(res_s)} ({points(res_s, res_d)}), and the deep residual "
                 f"network is {points(plain_d, res_d)} over the deep plain one")
    codes = [finding.get("code") for finding in out.comparison.get("findings") or []]
    text += (". The comparison diagnosis reports `degradation`: the deeper plain network is worse on its own "
             "training data, an optimisation difficulty, not overfitting." if "degradation" in codes else
             ". The comparison diagnosis did not report `degradation` on this run.")
    return text


def _only(values: list) -> Callable[[dict], bool]:
    return lambda row: all(row["values"].get(path) in allowed for path, allowed in values)


LESSONS: tuple[Lesson, ...] = (
    Lesson(
        key="activations",
        title="Bad on training data: a new activation function",
        recipe=("Deep sigmoid networks barely beat chance on handwritten digits: the vanishing gradient. ReLU, "
                "Leaky ReLU, Parametric ReLU and Maxout keep the gradient alive through depth."),
        sweep={"name": "recipe: activation against depth",
               "base": {"dataset": DIGITS, "architecture": {"hidden_layers": SHALLOW, "init": "kaiming_uniform"},
                        "optimizer": {"name": "sgd", "learning_rate": 0.02}, "epochs": 15, "batch_size": 32},
               "grid": {"activation": ACTIVATIONS, "architecture.hidden_layers": [SHALLOW, DEEP]},
               "seeds": [0, 1], "max_parallel": 4},
        reading=read_activations,
        plots=(Plot("activations-deep", "train_accuracy", "Training accuracy per epoch, the deep networks (seed 0).",
                    lambda row: len(row["values"]["architecture.hidden_layers"]) > 1),)),
    Lesson(
        key="optimizers",
        title="Bad on training data: adaptive learning rates and momentum",
        recipe=("Momentum rolls through plateaus; Adagrad and RMSProp divide the step by the size of past "
                "gradients; Adam combines RMSProp and momentum. Plain SGD with the same budget trains slowest."),
        sweep={"name": "recipe: optimizers",
               "base": {"dataset": DIGITS, "architecture": {"hidden_layers": [64, 64]}, "activation": "relu",
                        "epochs": 10, "batch_size": 32},
               "grid": {"optimizer": ["sgd", "momentum", "adagrad", "rmsprop", "adam"]},
               "seeds": [0, 1], "max_parallel": 4},
        reading=read_optimizers,
        plots=(Plot("optimizers", "train_loss", "Training loss per epoch, one line per optimizer (seed 0)."),)),
    Lesson(
        key="early-stopping",
        title="Good on training, bad on validation: early stopping",
        recipe=("Stop where the validation loss is lowest, not the training loss: a validation set stands in for "
                "the test set."),
        sweep={"name": "recipe: early stopping",
               "base": {"dataset": SMALL_MNIST1D, "architecture": {"hidden_layers": [256, 256]}, "activation": "relu",
                        "optimizer": {"name": "adam", "learning_rate": 0.001}, "epochs": 30, "batch_size": 32},
               "grid": {"patience": [None, 5]},
               "seeds": [0, 1], "max_parallel": 4},
        reading=read_early_stopping,
        plots=(Plot("early-stopping", "val_loss", "Validation loss per epoch, with and without patience (seed 0)."),)),
    Lesson(
        key="regularization",
        title="Good on training, bad on validation: L1, L2 and dropout (and what they do to a network that cannot fit)",
        recipe=("Regularization and dropout are remedies for overfitting: they trade some fit on the training "
                "data for better validation results. On a network that does not fit its training data they only "
                "make the training results worse."),
        sweep={"name": "recipe: regularizers",
               "base": {"dataset": SMALL_MNIST1D, "architecture": {"hidden_layers": BIG}, "activation": "relu",
                        "optimizer": {"name": "adam", "learning_rate": 0.001}, "epochs": 30, "batch_size": 32},
               "grid": {"regularization": REGULARIZERS, "architecture.hidden_layers": [BIG, TINY]},
               "seeds": [0, 1], "max_parallel": 4},
        reading=read_regularization,
        plots=(Plot("regularization-big", "val_loss", "Validation loss per epoch, the large network (seed 0).",
                    _only([("architecture.hidden_layers", [BIG])])),
               Plot("regularization-tiny", "train_accuracy",
                    "Training accuracy per epoch, the small network that does not fit (seed 0).",
                    _only([("architecture.hidden_layers", [TINY])])))),
    Lesson(
        key="degradation",
        title="Don't blame overfitting: deeper is worse on training, residual connections fix it",
        recipe=("A deeper plain network can be worse than a shallower one on its own training data: not "
                "overfitting but an optimisation difficulty, the problem residual connections solve."),
        sweep={"name": "recipe: depth and residual connections",
               "base": {"dataset": DIGITS, "architecture": {"hidden_layers": [32, 32]}, "activation": "relu",
                        "optimizer": {"name": "adam", "learning_rate": 0.001}, "epochs": 10, "batch_size": 32},
               "grid": {"architecture.hidden_layers": [[32] * 2, [32] * 20], "architecture.residual": [False, True]},
               "seeds": [0, 1], "max_parallel": 4},
        reading=read_degradation,
        plots=(Plot("degradation", "train_accuracy", "Training accuracy per epoch, plain and residual (seed 0)."),)),
)
