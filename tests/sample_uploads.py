"""Small datasets made here for upload tests, and the multipart POST that sends them."""

from __future__ import annotations

import io
import zipfile

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


# --- hostile files -------------------------------------------------------------

def npy_header(shape: tuple[int, ...], descr: str = "<f8") -> bytes:
    """An .npy header declaring ``shape`` (with no data behind it unless appended)."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def npz_of(members: dict[str, bytes], compressed: bool = False) -> bytes:
    """A zip archive holding these raw members: an .npz whose .npy files may lie."""
    buffer = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def declared_huge_npz() -> bytes:
    """X's header declares 1,000,000 x 10,000 float64 (74.5 GiB); the data is 8 bytes."""
    y = io.BytesIO()
    np.save(y, np.arange(1_000_000) % 2)
    return npz_of({"X.npy": npy_header((1_000_000, 10_000)) + b"\0" * 8, "y.npy": y.getvalue()}, compressed=True)


def truncated_member_npz(x: np.ndarray, y: np.ndarray) -> bytes:
    """A well-formed zip whose X.npy stops halfway through its data."""
    whole, labels = io.BytesIO(), io.BytesIO()
    np.save(whole, x)
    np.save(labels, y)
    data = whole.getvalue()
    return npz_of({"X.npy": data[:len(data) - x.nbytes // 2], "y.npy": labels.getvalue()})
