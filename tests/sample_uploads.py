"""Small datasets made here for upload tests, and the multipart POST that sends them."""

from __future__ import annotations

import io

import numpy as np

# Features on wildly different scales: what `dataset.scale` is for.
FEATURE_SCALES = np.array([1000.0, 1.0, 0.01, 50.0])
FEATURE_OFFSETS = np.array([5000.0, 0.0, -0.3, 200.0])


def blobs(rows_per_class: int = 60, classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs, one per class, in 4 features of very different scales."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=2.0, size=(classes, len(FEATURE_SCALES)))
    x = np.concatenate([centres[c] + rng.normal(size=(rows_per_class, len(FEATURE_SCALES))) for c in range(classes)])
    y = np.repeat(np.arange(classes), rows_per_class)
    order = rng.permutation(len(y))
    return (x[order] * FEATURE_SCALES + FEATURE_OFFSETS).astype(np.float32), y[order]


def as_npz(x: np.ndarray, y: np.ndarray, compressed: bool = False, **extra: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, X=x, y=y, **extra)
    return buffer.getvalue()


def as_csv(x: np.ndarray, y: np.ndarray, names: list[str] | None = None) -> bytes:
    names = names or [f"f{i}" for i in range(x.shape[1])]
    lines = [",".join([*names, "label"])]
    lines += [",".join([*(repr(float(v)) for v in row), str(int(label))]) for row, label in zip(x, y)]
    return ("\n".join(lines) + "\n").encode()


def upload(client, data: bytes, filename: str = "data.npz", **form: str):
    return client.post("/v1/datasets", data={"file": (io.BytesIO(data), filename), **form},
                       content_type="multipart/form-data")


def uploaded(client, data: bytes, filename: str = "data.npz", **form: str) -> dict:
    resp = upload(client, data, filename, **form)
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()
