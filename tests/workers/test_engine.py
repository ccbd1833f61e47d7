"""The engine against trusted references: hand computations and PyTorch's own modules."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core.datasets import BUILTIN_DATASETS, load_builtin
from core.settings import Limits
from core.spec import ACTIVATIONS, count_parameters, normalise
from workers.engine import loop
from workers.engine.config import JobConfig
from workers.engine.data import prepare, stratified_split
from workers.engine.early_stopping import EarlyStopping
from trainrx.network import Maxout, build_network as build_model
from workers.engine.optim import weight_penalty


def spec(**overrides) -> JobConfig:
    base = {"dataset": {"name": "moons"}, "architecture": {"hidden_layers": [8, 8]}, "epochs": 2}
    base.update(overrides)
    return JobConfig.from_request(normalise(base, limits=Limits(), resolver=None))


def data_for(config: JobConfig):
    meta = BUILTIN_DATASETS[config.dataset.name]
    return prepare(load_builtin(meta.name), config.dataset, meta.classes, torch.device("cpu"))


@pytest.mark.parametrize("activation", [a if a != "maxout" else {"name": "maxout", "pieces": 3}
                                        for a in ACTIVATIONS])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_parameter_count_matches_the_built_model(activation, batch_norm):
    request = spec(activation=activation, architecture={"hidden_layers": [7, 5], "batch_norm": batch_norm})
    model = build_model(request.network(64, 10))
    expected = count_parameters(64, 10, [7, 5], request.to_dict()["activation"], batch_norm)
    assert sum(p.numel() for p in model.parameters()) == expected


def test_maxout_keeps_the_maximum_of_each_group():
    x = torch.tensor([[1.0, 5.0, -2.0, 3.0, 0.5, 0.25]])
    assert torch.equal(Maxout(2)(x), torch.tensor([[5.0, 3.0, 0.5]]))
    assert torch.equal(Maxout(3)(x), torch.tensor([[5.0, 3.0]]))


def test_l1_and_l2_penalties_match_a_hand_computation():
    torch.manual_seed(0)
    w1 = torch.randn(3, 2, requires_grad=True)
    w2 = torch.randn(2, 3, requires_grad=True)
    l1, l2 = 0.01, 0.1
    penalty = weight_penalty([w1, w2], l1, l2)
    by_hand = sum(l1 * w.detach().abs().sum() + l2 / 2 * (w.detach() ** 2).sum() for w in (w1, w2))
    assert torch.allclose(penalty, by_hand)
    penalty.backward()
    # d/dw (l1|w| + l2/2 w^2) = l1 sign(w) + l2 w
    assert torch.allclose(w1.grad, l1 * torch.sign(w1.detach()) + l2 * w1.detach())
    assert weight_penalty([w1], 0.0, 0.0) is None


def test_penalty_covers_weight_matrices_only():
    request = spec(activation="prelu", architecture={"hidden_layers": [4], "batch_norm": True},
                   regularization={"l2": 1.0})
    model = build_model(request.network(2, 2))
    weights = [layer.weight for _, layer in model.weight_layers()]
    expected = 0.5 * sum((w ** 2).sum() for w in weights)
    assert torch.allclose(weight_penalty(weights, 0.0, 1.0), expected)
    everything = 0.5 * sum((p ** 2).sum() for p in model.parameters())
    assert not torch.allclose(expected, everything)  # biases, norm and PReLU slopes would differ


def test_the_training_loss_gradient_is_cross_entropy_plus_penalty():
    """One SGD step of the engine equals a step computed by hand from F.cross_entropy."""
    request = spec(architecture={"hidden_layers": [3]}, activation="tanh",
                   optimizer={"name": "sgd", "learning_rate": 0.5}, regularization={"l1": 0.01, "l2": 0.1},
                   batch_size=10_000, epochs=1, dataset={"name": "moons", "train_samples": 20})
    data = data_for(request)
    torch.manual_seed(request.seed)
    reference = build_model(request.network(data.features, data.classes))
    params = {k: v.clone().requires_grad_(True) for k, v in reference.state_dict().items()}
    x, y = data.x_train, data.y_train
    h = torch.tanh(x @ params["hidden.0.linear.weight"].T + params["hidden.0.linear.bias"])
    logits = h @ params["output.weight"].T + params["output.bias"]
    weights = [params["hidden.0.linear.weight"], params["output.weight"]]
    total = F.cross_entropy(logits, y) + sum(0.01 * w.abs().sum() + 0.05 * (w ** 2).sum() for w in weights)
    total.backward()
    expected = {k: (v - 0.5 * v.grad).detach() for k, v in params.items()}
    result = loop.run(request, data)
    for key, value in result.model.state_dict().items():
        assert torch.allclose(value, expected[key], atol=1e-6), key


def test_dropout_is_on_in_training_and_off_in_eval():
    request = spec(architecture={"hidden_layers": [256]}, regularization={"dropout": 0.5})
    model = build_model(request.network(2, 2))
    x = torch.ones(64, 2)
    hidden = model.hidden[0]
    model.train()
    train_out = hidden(x)
    model.eval()
    eval_out = hidden(x)
    active = hidden.act(hidden.norm(hidden.linear(x)))
    assert torch.equal(eval_out, active)
    dropped = (train_out == 0) & (active != 0)
    assert 0.3 < dropped.float().mean().item() / (active != 0).float().mean().item() < 0.7
    kept = train_out != 0
    assert torch.allclose(train_out[kept], 2 * active[kept])  # inverted dropout scales by 1/(1-p)


def test_l2_shrinks_the_weights():
    plain = loop.run(spec(epochs=5), data_for(spec()))
    decayed = loop.run(spec(epochs=5, regularization={"l2": 0.05}), data_for(spec()))
    norm = lambda m: sum(l.weight.norm() ** 2 for _, l in m.weight_layers()).sqrt().item()  # noqa: E731
    assert norm(decayed.model) < 0.9 * norm(plain.model)


def test_stratified_split_is_fixed_by_its_seed_and_keeps_class_shares():
    y = np.repeat(np.arange(3), [100, 50, 10])
    train, val = stratified_split(y, 0.2, seed=7)
    assert len(set(train) & set(val)) == 0 and len(train) + len(val) == len(y)
    assert np.bincount(y[val]).tolist() == [20, 10, 2]
    again_train, again_val = stratified_split(y, 0.2, seed=7)
    assert np.array_equal(train, again_train) and np.array_equal(val, again_val)
    assert not np.array_equal(stratified_split(y, 0.2, seed=8)[1], val)


def test_training_is_reproducible_for_a_seed():
    request = spec(epochs=3, regularization={"dropout": 0.2})
    a, b = loop.run(request, data_for(request)), loop.run(request, data_for(request))
    assert a.rows == b.rows
    c = loop.run(dataclasses.replace(request, seed=1), data_for(request))
    assert c.rows != a.rows


def test_early_stopping_waits_patience_epochs_and_remembers_the_best():
    model = torch.nn.Linear(1, 1)
    stopper = EarlyStopping(patience=2, monitor="val_loss", min_delta=0.1)
    decisions = [stopper.update(e, {"val_loss": v}, model) for e, v in enumerate([1.0, 0.5, 0.45, 0.6], 1)]
    assert decisions == [False, False, False, True]
    assert stopper.best_epoch == 2 and stopper.best == 0.5
    acc = EarlyStopping(patience=1, monitor="val_accuracy")
    assert [acc.update(e, {"val_accuracy": v}, model) for e, v in enumerate([0.5, 0.7, 0.6], 1)] == \
        [False, False, True]


def test_a_diverging_run_stops_at_the_first_non_finite_loss():
    request = spec(dataset={"name": "digits"}, architecture={"hidden_layers": [64, 64]}, activation="elu",
                   optimizer={"name": "sgd", "learning_rate": 100.0}, epochs=50)
    result = loop.run(request, data_for(request))
    assert result.stop_reason == loop.DIVERGED
    assert len(result.rows) == 1 and result.rows[0]["train_loss"] is None
    assert result.summary["train_loss"] is None  # written as null, never NaN


def test_mnist1d_has_a_test_set_and_leaves_global_rngs_alone():
    import random

    np.random.seed(123)
    random.seed(123)
    before = (np.random.random(), random.random())
    np.random.seed(123)
    random.seed(123)
    arrays = load_builtin("mnist1d")
    assert (np.random.random(), random.random()) == before
    assert arrays.x.shape == (4000, 40) and arrays.x_test.shape == (1000, 40)


def test_an_export_past_its_time_limit_is_recorded_like_a_failed_export(tmp_path):
    from core.artifacts import LocalArtifactStore
    from workers.model_export import save_exports

    saved = save_exports(LocalArtifactStore(tmp_path), "job", build_model(spec().network(2, 2)), {"method": "none"},
                         2, lambda line: None, timeout_s=0.001)
    assert "TRAINRX_EXPORT_TIMEOUT_S" in saved["model_error"] and "TRAINRX_EXPORT_TIMEOUT_S" in saved["onnx_error"]
    assert "model" not in saved and "onnx" not in saved


def test_the_linear_stratified_split_gives_the_splits_the_per_class_scan_gave():
    """Jobs submitted before the change split their data the same way after it."""
    def per_class_scan(y, validation_split, seed):
        rng = np.random.default_rng(seed)
        train, val = [], []
        for label in np.unique(y):
            members = rng.permutation(np.flatnonzero(y == label))
            n_val = int(round(len(members) * validation_split)) if len(members) > 1 else 0
            n_val = min(max(n_val, 1 if len(members) > 1 else 0), len(members) - 1)
            val.append(members[:n_val])
            train.append(members[n_val:])
        return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(val))

    y = np.random.default_rng(3).integers(0, 37, size=2000)
    for got, expected in zip(stratified_split(y, 0.2, 5), per_class_scan(y, 0.2, 5)):
        assert np.array_equal(got, expected)


def test_a_deadline_spent_before_training_stops_the_run_at_once():
    """The worker sets the deadline from the job's start: setup counts against max_runtime_s."""
    request = spec()
    result = loop.run(request, data_for(request), deadline=0.0, clock=lambda: 1.0)
    assert result.stop_reason == loop.TIME_LIMIT and result.rows == []
