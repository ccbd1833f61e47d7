"""The built-in datasets: what the registry declares (task, input shape, sizes) is what the loaders give."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.datasets import (BUILTIN_DATASETS, CLASSIFICATION, REGRESSION, DatasetShape, input_shape_problem,
                           load_builtin)

DECLARED = {"digits": (CLASSIFICATION, (1, 8, 8)), "mnist1d": (CLASSIFICATION, (1, 40)),
            "mnist-5k": (CLASSIFICATION, (1, 28, 28)), "moons": (CLASSIFICATION, None),
            "spirals": (CLASSIFICATION, None), "diabetes": (REGRESSION, None), "friedman1": (REGRESSION, None)}


def test_every_builtin_declares_its_task_and_input_shape():
    assert {name: (d.task, d.input_shape) for name, d in BUILTIN_DATASETS.items()} == DECLARED
    for meta in BUILTIN_DATASETS.values():
        if meta.input_shape is not None:
            assert math.prod(meta.input_shape) == meta.features
        assert meta.shape.task == meta.task and meta.shape.input_shape == meta.input_shape


@pytest.mark.parametrize("name", ["diabetes", "friedman1", "digits", "moons"])
def test_the_loaders_give_the_declared_sizes(name):
    meta, arrays = BUILTIN_DATASETS[name], load_builtin(name)
    assert arrays.x.shape == (meta.samples, meta.features) and arrays.x.dtype == np.float32
    assert arrays.y.shape == (meta.samples,)
    if meta.task == REGRESSION:
        assert meta.classes == 0 and meta.shape.outputs == 1
        assert arrays.y.dtype == np.float32 and np.isfinite(arrays.y).all() and arrays.y.std() > 0
    else:
        assert arrays.y.dtype == np.int64 and int(arrays.y.max()) + 1 == meta.classes == meta.shape.outputs


def test_diabetes_is_sklearns_data_standardised_with_its_own_constants():
    from sklearn.datasets import load_diabetes

    raw, target = load_diabetes(return_X_y=True, scaled=False)
    arrays = load_builtin("diabetes")
    assert (arrays.x.shape, arrays.y.shape) == ((442, 10), (442,))
    np.testing.assert_array_equal(arrays.y, target.astype(np.float32))  # original units (25..346)
    prep = arrays.preprocessing
    assert prep["method"] == "standard"
    # The recorded constants turn the raw rows into the training rows, in float32 as the exported model does.
    again = (raw.astype(np.float32) - np.float32(prep["mean"])) / np.float32(prep["std"])
    np.testing.assert_array_equal(again, arrays.x)
    np.testing.assert_allclose(arrays.x.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(arrays.x.std(axis=0), 1, atol=1e-5)


def test_friedman1_is_the_stated_draw():
    from sklearn.datasets import make_friedman1

    x, y = make_friedman1(n_samples=2000, n_features=10, noise=1.0, random_state=0)
    arrays = load_builtin("friedman1")
    np.testing.assert_array_equal(arrays.x, x.astype(np.float32))
    np.testing.assert_array_equal(arrays.y, y.astype(np.float32))


@pytest.mark.parametrize("shape, features, ok", [
    ([1, 8, 8], 64, True), ([1, 40], 40, True), ([2, 20], 40, True), ([4, 4, 4], 64, True),
    ([1, 8, 8], 63, False), ([64], 64, False), ([1, 1, 8, 8], 64, False), ([1, 0, 64], 0, False),
    ([1, True], 1, False), ("[1, 8, 8]", 64, False), ([1.0, 8], 8, False)])
def test_an_input_shape_is_2_or_3_positive_integers_whose_product_is_the_feature_count(shape, features, ok):
    assert (input_shape_problem(shape, features) is None) == ok


def test_a_regression_shape_has_one_output():
    assert DatasetShape(10, 3, 0, task=REGRESSION).outputs == 1
    assert DatasetShape(10, 3, 4).outputs == 4


def test_a_huge_input_shape_is_refused_without_printing_its_product():
    problem = input_shape_problem([10**4000, 10**4000, 1], 64)
    assert "over 1e+15" in problem and len(problem) < 200
