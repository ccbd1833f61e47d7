"""Reading and checking an uploaded dataset before anything is stored.

Two formats: ``.npz`` with arrays ``X`` (rows x features, numeric) and ``y``
(integer class labels), read with ``allow_pickle=False``; and ``.csv`` with a
header row and a ``label`` column, every other column numeric. Every problem is
an :class:`UploadInvalid` whose message names it, so that the API can answer
422 (or 413 for sizes) without guessing.

The task is declared by the uploader, never guessed: float labels that happen to
be whole numbers may be classes or measurements, and only the uploader knows.
A ``regression`` upload keeps ``y`` as float32 targets (finite, not all equal).
"""

from __future__ import annotations

import csv
import io
import re
import warnings
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from core.datasets import CLASSIFICATION, REGRESSION, target_summary
from core.settings import Limits

MIN_CLASS_SAMPLES = 2  # one for training, one for validation: the smallest stratified split
MIN_REGRESSION_ROWS = 2  # one for training, one for validation
LABEL_COLUMN = "label"
FORMATS = ("npz", "csv")


class UploadInvalid(ValueError):
    """The upload is not a usable dataset. ``too_large`` marks size problems (413, not 422)."""

    def __init__(self, message: str, *, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


@dataclass(frozen=True)
class ParsedDataset:
    x: np.ndarray  # float32, rows x features
    # classification: int64 labels 0..classes-1, every class with at least MIN_CLASS_SAMPLES rows;
    # regression: float32 targets, finite
    y: np.ndarray
    format: str
    feature_names: list[str] | None  # the CSV header without `label`; None for .npz
    # class_counts(), feature_ranges() and target_summary() when they were computed elsewhere (by the
    # parsing child process, core/upload_sandbox.py), so that the API process does not compute them again.
    described: dict | None = None
    task: str = CLASSIFICATION

    @property
    def rows(self) -> int:
        return int(self.x.shape[0])

    @property
    def features(self) -> int:
        return int(self.x.shape[1])

    def class_counts(self) -> dict[str, int]:
        """Rows per class; empty for a regression upload."""
        if self.described is not None:
            return self.described["class_counts"]
        if self.task == REGRESSION:
            return {}
        return {str(label): int(n) for label, n in enumerate(np.bincount(self.y))}

    def target_summary(self) -> dict | None:
        """A regression upload's targets: min, max, mean, std; None for classification."""
        if self.described is not None:
            return self.described.get("target")
        return target_summary(self.y) if self.task == REGRESSION else None

    def feature_ranges(self) -> list[dict]:
        """Per feature: min, max, mean and standard deviation (float64 sums), read in
        blocks of rows so that no float64 copy of X is ever made."""
        if self.described is not None:
            return self.described["feature_ranges"]
        lo, hi = self.x.min(axis=0), self.x.max(axis=0)
        mean = self.x.sum(axis=0, dtype=np.float64) / self.rows
        squares = np.zeros(self.features, np.float64)
        step = max(1, _BLOCK_VALUES // self.features)
        for start in range(0, self.rows, step):
            block = self.x[start:start + step].astype(np.float64) - mean
            squares += np.einsum("ij,ij->j", block, block)
        std = np.sqrt(squares / self.rows)
        names = self.feature_names or [None] * self.features
        return [{"index": i, "name": names[i], "min": float(lo[i]), "max": float(hi[i]), "mean": float(mean[i]),
                 "std": float(std[i])} for i in range(self.features)]

    def description(self) -> dict:
        return {"class_counts": self.class_counts(), "feature_ranges": self.feature_ranges(),
                "target": self.target_summary()}


_BLOCK_VALUES = 1 << 20  # float64 values per block of rows: 8 MiB


def detect_format(filename: str | None, head: bytes) -> str:
    """By the file name's suffix; without one, a zip archive is an .npz and anything else a .csv."""
    suffix = (filename or "").rsplit(".", 1)[-1].lower() if "." in (filename or "") else ""
    if suffix in FORMATS:
        return suffix
    if suffix:
        raise UploadInvalid(f"Unsupported file type '.{suffix}': upload a .npz (numpy.savez with arrays X and y) "
                            "or a .csv with a header and a 'label' column.")
    return "npz" if head.startswith(b"PK\x03\x04") else "csv"


def parse_upload(stream: BinaryIO, filename: str | None, limits: Limits,
                 task: str = CLASSIFICATION) -> ParsedDataset:
    """Read and check an upload of ``task``; ``stream`` must be seekable."""
    head = stream.read(4)
    stream.seek(0)
    if not head:
        raise UploadInvalid("The file is empty.")
    fmt = detect_format(filename, head)
    x, y, names = _read_npz(stream, limits, task) if fmt == "npz" else _read_csv(stream, limits, task)
    y = _check_targets(y) if task == REGRESSION else _check_labels(y, limits)
    return ParsedDataset(x=x, y=y, format=fmt, feature_names=names, task=task)


# --- .npz ----------------------------------------------------------------------

def _read_npz(stream: BinaryIO, limits: Limits, task: str) -> tuple[np.ndarray, np.ndarray, None]:
    head = stream.read(6)
    stream.seek(0)
    if head.startswith(b"\x93NUMPY"):
        raise UploadInvalid("This is a single .npy array; upload an .npz holding arrays X and y "
                            "(numpy.savez('data.npz', X=X, y=y)).")
    if not head.startswith(b"PK"):
        raise UploadInvalid("Not an .npz file: an .npz is a zip archive written by numpy.savez.")
    try:
        archive = np.load(stream, allow_pickle=False)
    except _DAMAGED as exc:  # noqa: BLE001
        raise UploadInvalid(f"Not a readable .npz file (numpy.savez output): {exc}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise UploadInvalid("This is a single .npy array; upload an .npz holding arrays X and y "
                            "(numpy.savez('data.npz', X=X, y=y)).")
    with archive:
        missing = [key for key in ("X", "y") if key not in archive.files]
        if missing:
            found = ", ".join(archive.files) or "nothing"
            raise UploadInvalid(f"The .npz must hold arrays 'X' and 'y'; missing {', '.join(missing)} "
                                f"(it holds: {found}).")
        decoded = sum(archive.zip.getinfo(f"{key}.npy").file_size for key in ("X", "y"))
        if decoded > limits.max_upload_bytes:
            raise UploadInvalid(f"X and y take {decoded:,} bytes once decompressed; at most "
                                f"{limits.max_upload_bytes:,} are allowed.", too_large=True)
        _check_npz_headers(_npy_header(archive, "X"), _npy_header(archive, "y"), limits, task)
        x, y = (_npz_array(archive, key) for key in ("X", "y"))
    with np.errstate(over="ignore", invalid="ignore"):
        features = x.astype(np.float32, copy=False)
    del x
    _check_finite(features, None)
    return features, y, None


# What a damaged archive or member raises while it is read is not one family: zipfile's
# BadZipFile, zlib.error, EOFError, NotImplementedError (a compression it lacks),
# RuntimeError (encryption), and from numpy's header parser ValueError, SyntaxError and
# tokenize.TokenError. Any of them means the file is damaged, so all are caught.
_DAMAGED = Exception


def _npy_header(archive: np.lib.npyio.NpzFile, key: str) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype that a member's .npy header declares, read without its data:
    nothing is allocated from an untrusted header before it is checked."""
    try:
        with archive.zip.open(f"{key}.npy") as member:
            version = np.lib.format.read_magic(member)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(member)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(member)
            else:
                raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]}")
    except _DAMAGED as exc:  # noqa: BLE001
        raise UploadInvalid(f"{key} is not a readable .npy array in the .npz: {exc}") from None
    if dtype.hasobject:
        raise UploadInvalid(f"{key} cannot be read without pickle (dtype {dtype}); save numeric arrays.")
    return shape, dtype


def _check_npz_headers(x_header: tuple[tuple[int, ...], np.dtype], y_header: tuple[tuple[int, ...], np.dtype],
                       limits: Limits, task: str) -> None:
    """Shapes, dtypes and sizes, as declared, before any array is read; the converted
    arrays (float32 X, int64 y) count against the limit too, before any conversion."""
    (x_shape, x_dtype), (y_shape, y_dtype) = x_header, y_header
    if len(x_shape) != 2:
        raise UploadInvalid(f"X must be 2-dimensional (rows x features); it has shape {x_shape}.")
    if len(y_shape) != 1:
        raise UploadInvalid(f"y must be 1-dimensional (one label per row); it has shape {y_shape}.")
    if x_shape[0] != y_shape[0]:
        raise UploadInvalid(f"X has {x_shape[0]:,} rows but y has {y_shape[0]:,} labels; they must match.")
    if x_dtype.kind not in "biuf":
        raise UploadInvalid(f"X must be numeric; it has dtype {x_dtype}.")
    if y_dtype.kind not in "biuf":
        what = "numeric regression targets" if task == REGRESSION else "integer class labels"
        raise UploadInvalid(f"y must hold {what}; it has dtype {y_dtype}.")
    rows, features = x_shape
    _check_shape(rows, features, limits)
    declared = rows * features * x_dtype.itemsize + rows * y_dtype.itemsize
    converted = rows * features * np.dtype(np.float32).itemsize + rows * np.dtype(np.int64).itemsize
    if max(declared, converted) > limits.max_upload_bytes:
        how = "as their headers declare them" if declared >= converted else "once converted to float32 and int64"
        raise UploadInvalid(f"X and y take {max(declared, converted):,} bytes {how}; at most "
                            f"{limits.max_upload_bytes:,} are allowed.", too_large=True)


def _npz_array(archive: np.lib.npyio.NpzFile, key: str) -> np.ndarray:
    try:
        return archive[key]
    except _DAMAGED as exc:  # noqa: BLE001 — truncated data, a bad checksum, broken deflate
        raise UploadInvalid(f"{key} is damaged in the .npz: {exc}") from None


# --- .csv ----------------------------------------------------------------------

_CONVERT = re.compile(r"could not convert string (?P<value>.*) to float32 at row (?P<row>\d+), column (?P<col>\d+)")
_COLUMNS = re.compile(r"the number of columns changed from (?P<was>\d+) to (?P<now>\d+) at row (?P<row>\d+)")


def _read_csv(stream: BinaryIO, limits: Limits, task: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    try:
        header_line = text.readline()
        names = [name.strip() for name in next(csv.reader([header_line]), [])]
        if not any(names):
            raise UploadInvalid("The .csv has no header row; the first line must name the columns, "
                                "one of them 'label'.")
        _check_header(names, limits)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data": checked below
            values = np.loadtxt(text, delimiter=",", dtype=np.float32, ndmin=2, quotechar='"',
                                max_rows=limits.max_upload_rows + 1)
    except UnicodeDecodeError as exc:
        raise UploadInvalid(f"The .csv is not UTF-8 text ({exc.reason} at byte {exc.start}).") from None
    except csv.Error as exc:  # a header field over the csv module's 131,072-character limit, among others
        raise UploadInvalid(f"The .csv header could not be read: {exc}.") from None
    except ValueError as exc:
        if isinstance(exc, UploadInvalid):
            raise
        raise UploadInvalid(_csv_error(str(exc), names, task)) from None
    finally:
        text.detach()
    if values.size == 0:
        raise UploadInvalid("The .csv has a header but no data rows.")
    if values.shape[1] != len(names):
        raise UploadInvalid(f"The header names {len(names)} columns but the rows have {values.shape[1]}.")
    _check_shape(values.shape[0], len(names) - 1, limits)
    label_at = names.index(LABEL_COLUMN)
    feature_names = [n for i, n in enumerate(names) if i != label_at]
    x = np.ascontiguousarray(np.delete(values, label_at, axis=1))
    _check_finite(x, feature_names)
    return x, values[:, label_at], feature_names


def _check_header(names: list[str], limits: Limits) -> None:
    if LABEL_COLUMN not in names:
        shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
        raise UploadInvalid(f"The .csv has no '{LABEL_COLUMN}' column; its header is: {shown}.")
    unnamed = [i + 1 for i, name in enumerate(names) if not name]
    if unnamed:
        raise UploadInvalid(f"Header column {unnamed[0]} has no name.")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise UploadInvalid(f"The header names column '{name}' twice.")
        seen.add(name)
    if len(names) < 2:
        raise UploadInvalid(f"The .csv needs at least one feature column besides '{LABEL_COLUMN}'.")
    if len(names) - 1 > limits.max_upload_features:
        raise UploadInvalid(f"{len(names) - 1:,} feature columns; at most {limits.max_upload_features:,} "
                            "are allowed.")


def _csv_error(message: str, names: list[str], task: str) -> str:
    """numpy's parse error, restated with the column's name and the data row (header not counted)."""
    match = _CONVERT.search(message)
    if match:
        col = int(match["col"]) - 1
        column = f"column '{names[col]}'" if 0 <= col < len(names) else f"column {col + 1}"
        what = "an empty value" if match["value"] == "''" else f"the non-numeric value {match['value']}"
        label = 0 <= col < len(names) and names[col] == LABEL_COLUMN
        rule = ("every column must be a number" if not label
                else "regression targets must be numbers" if task == REGRESSION
                else "labels must be integer class labels 0..k-1")
        return f"Data row {int(match['row']) + 1}, {column}: {what}; {rule}."
    match = _COLUMNS.search(message)
    if match:
        return (f"Data row {match['row']} has {match['now']} columns but the header has {match['was']}; "
                "every row needs one value per column.")
    return f"The .csv could not be read: {message}"


# --- checks common to both formats --------------------------------------------

def _check_shape(rows: int, features: int, limits: Limits) -> None:
    if rows > limits.max_upload_rows:
        raise UploadInvalid(f"More than {limits.max_upload_rows:,} rows; at most {limits.max_upload_rows:,} "
                            "are allowed.")
    if features < 1:
        raise UploadInvalid("X has no feature columns.")
    if features > limits.max_upload_features:
        raise UploadInvalid(f"{features:,} features; at most {limits.max_upload_features:,} are allowed.")


def _check_finite(x: np.ndarray, names: list[str] | None) -> None:
    bad = ~np.isfinite(x)
    if bad.any():
        row, col = (int(i[0]) for i in np.nonzero(bad))
        feature = f"column '{names[col]}'" if names else f"feature {col}"
        count = int(bad.sum())
        raise UploadInvalid(f"{count:,} value{'s are' if count > 1 else ' is'} NaN or infinite (or beyond float32's range, "
                            f"about ±3.4e38); the first is at row {row + 1}, {feature}.")


def _check_targets(y: np.ndarray) -> np.ndarray:
    """Regression targets: finite numbers (float32), at least MIN_REGRESSION_ROWS, not all equal."""
    if y.shape[0] < MIN_REGRESSION_ROWS:
        raise UploadInvalid(f"A regression dataset needs at least {MIN_REGRESSION_ROWS} rows (one for training, "
                            f"one for validation); it has {y.shape[0]}.")
    with np.errstate(over="ignore", invalid="ignore"):
        targets = np.asarray(y).astype(np.float32)
    bad = ~np.isfinite(targets)
    if bad.any():
        count = int(bad.sum())
        raise UploadInvalid(f"{count:,} target{'s are' if count > 1 else ' is'} NaN or infinite (or beyond "
                            f"float32's range, about ±3.4e38); the first is at row {int(np.argmax(bad)) + 1}. "
                            "Regression targets must be finite numbers.")
    if targets.min() == targets.max():
        raise UploadInvalid(f"Every target is {_label(targets[0])}: a regression dataset needs targets that vary.")
    return targets


def _label(value: np.generic) -> int | float:
    """A label as written: 7, not 7.0 (CSV labels are read as floats)."""
    number = value.item()
    return int(number) if float(number).is_integer() else number


def _check_labels(y: np.ndarray, limits: Limits) -> np.ndarray:
    """Labels are integers 0..k-1, at least two and at most ``max_classes`` classes, each with at least
    MIN_CLASS_SAMPLES rows."""
    if y.shape[0] == 0:
        raise UploadInvalid("The dataset has no rows.")
    if y.dtype.kind == "f":
        finite = np.isfinite(y)
        if not finite.all():
            raise UploadInvalid(f"Label of row {int(np.argmin(finite)) + 1} is not a number.")
        fractional = y != np.round(y)
        if fractional.any():
            row = int(np.argmax(fractional))
            raise UploadInvalid(f"Labels must be integer class labels; row {row + 1} has {_label(y[row])}.")
    if y.min() < 0:
        row = int(np.argmin(y))
        raise UploadInvalid(f"Labels must be 0 or more (classes 0..k-1); row {row + 1} has {_label(y[row])}.")
    if y.max() >= y.shape[0]:
        raise UploadInvalid(f"Labels must be 0..k-1: the largest is {_label(y.max())} but there are only "
                            f"{y.shape[0]:,} rows (renumber the classes).")
    if y.max() >= limits.max_classes:
        raise UploadInvalid(f"Labels go up to {_label(y.max())}, i.e. {int(y.max()) + 1:,} classes; at most "
                            f"{limits.max_classes:,} classes are allowed (TRAINRX_MAX_CLASSES).")
    labels = y.astype(np.int64)
    counts = np.bincount(labels)
    present = int((counts > 0).sum())
    if present < 2:
        raise UploadInvalid(f"At least 2 classes are needed; every row has label {int(labels[0])}.")
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        shown = ", ".join(map(str, empty[:10].tolist())) + (", ..." if empty.size > 10 else "")
        raise UploadInvalid(f"Labels must be 0..k-1 with no gaps: the labels go up to {len(counts) - 1} but "
                            f"{shown} {'has' if empty.size == 1 else 'have'} no rows (renumber the classes).")
    small = np.flatnonzero(counts < MIN_CLASS_SAMPLES)
    if small.size:
        shown = ", ".join(f"{c} ({counts[c]} row)" for c in small[:10].tolist())
        raise UploadInvalid(f"Every class needs at least {MIN_CLASS_SAMPLES} rows (one for training, one for "
                            f"validation); too small: {shown}.")
    return labels
