"""Reading and checking an uploaded dataset before anything is stored.

Two formats: ``.npz`` with arrays ``X`` (rows x features, numeric) and ``y``
(integer class labels), read with ``allow_pickle=False``; and ``.csv`` with a
header row and a ``label`` column, every other column numeric. Every problem is
an :class:`UploadInvalid` whose message names it, so that the API can answer
422 (or 413 for sizes) without guessing.
"""

from __future__ import annotations

import csv
import io
import re
import warnings
import zipfile
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from core.settings import Limits

MIN_CLASS_SAMPLES = 2  # one for training, one for validation: the smallest stratified split
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
    y: np.ndarray  # int64, rows; labels 0..classes-1, every class with at least MIN_CLASS_SAMPLES rows
    format: str
    feature_names: list[str] | None  # the CSV header without `label`; None for .npz

    @property
    def rows(self) -> int:
        return int(self.x.shape[0])

    @property
    def features(self) -> int:
        return int(self.x.shape[1])

    def class_counts(self) -> dict[str, int]:
        return {str(label): int(n) for label, n in enumerate(np.bincount(self.y))}

    def feature_ranges(self) -> list[dict]:
        """Per feature: min, max, mean and standard deviation (float64 sums)."""
        lo, hi = self.x.min(axis=0), self.x.max(axis=0)
        mean, std = self.x.mean(axis=0, dtype=np.float64), self.x.std(axis=0, dtype=np.float64)
        names = self.feature_names or [None] * self.features
        return [{"index": i, "name": names[i], "min": float(lo[i]), "max": float(hi[i]), "mean": float(mean[i]),
                 "std": float(std[i])} for i in range(self.features)]


def detect_format(filename: str | None, head: bytes) -> str:
    """By the file name's suffix; without one, a zip archive is an .npz and anything else a .csv."""
    suffix = (filename or "").rsplit(".", 1)[-1].lower() if "." in (filename or "") else ""
    if suffix in FORMATS:
        return suffix
    if suffix:
        raise UploadInvalid(f"Unsupported file type '.{suffix}': upload a .npz (numpy.savez with arrays X and y) "
                            "or a .csv with a header and a 'label' column.")
    return "npz" if head.startswith(b"PK\x03\x04") else "csv"


def parse_upload(stream: BinaryIO, filename: str | None, limits: Limits) -> ParsedDataset:
    """Read and check an upload; ``stream`` must be seekable."""
    head = stream.read(4)
    stream.seek(0)
    if not head:
        raise UploadInvalid("The file is empty.")
    fmt = detect_format(filename, head)
    x, y, names = _read_npz(stream, limits) if fmt == "npz" else _read_csv(stream, limits)
    return ParsedDataset(x=x, y=_check_labels(y, limits), format=fmt, feature_names=names)


# --- .npz ----------------------------------------------------------------------

def _read_npz(stream: BinaryIO, limits: Limits) -> tuple[np.ndarray, np.ndarray, None]:
    head = stream.read(6)
    stream.seek(0)
    if head.startswith(b"\x93NUMPY"):
        raise UploadInvalid("This is a single .npy array; upload an .npz holding arrays X and y "
                            "(numpy.savez('data.npz', X=X, y=y)).")
    if not head.startswith(b"PK"):
        raise UploadInvalid("Not an .npz file: an .npz is a zip archive written by numpy.savez.")
    try:
        archive = np.load(stream, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
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
        x, y = (_npz_array(archive, key) for key in ("X", "y"))
    if x.ndim != 2:
        raise UploadInvalid(f"X must be 2-dimensional (rows x features); it has shape {x.shape}.")
    if y.ndim != 1:
        raise UploadInvalid(f"y must be 1-dimensional (one label per row); it has shape {y.shape}.")
    if x.shape[0] != y.shape[0]:
        raise UploadInvalid(f"X has {x.shape[0]:,} rows but y has {y.shape[0]:,} labels; they must match.")
    if x.dtype.kind not in "biuf":
        raise UploadInvalid(f"X must be numeric; it has dtype {x.dtype}.")
    if y.dtype.kind not in "biuf":
        raise UploadInvalid(f"y must hold integer class labels; it has dtype {y.dtype}.")
    _check_shape(x.shape[0], x.shape[1], limits)
    with np.errstate(over="ignore", invalid="ignore"):
        features = x.astype(np.float32)
    _check_finite(features, None)
    return features, y, None


def _npz_array(archive: np.lib.npyio.NpzFile, key: str) -> np.ndarray:
    try:
        return archive[key]
    except ValueError as exc:  # object arrays, which would need pickle
        raise UploadInvalid(f"{key} cannot be read without pickle ({exc}); save numeric arrays.") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise UploadInvalid(f"{key} is damaged in the .npz: {exc}") from None


# --- .csv ----------------------------------------------------------------------

_CONVERT = re.compile(r"could not convert string (?P<value>.*) to float32 at row (?P<row>\d+), column (?P<col>\d+)")
_COLUMNS = re.compile(r"the number of columns changed from (?P<was>\d+) to (?P<now>\d+) at row (?P<row>\d+)")


def _read_csv(stream: BinaryIO, limits: Limits) -> tuple[np.ndarray, np.ndarray, list[str]]:
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
    except ValueError as exc:
        if isinstance(exc, UploadInvalid):
            raise
        raise UploadInvalid(_csv_error(str(exc), names)) from None
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


def _csv_error(message: str, names: list[str]) -> str:
    """numpy's parse error, restated with the column's name and the data row (header not counted)."""
    match = _CONVERT.search(message)
    if match:
        col = int(match["col"]) - 1
        column = f"column '{names[col]}'" if 0 <= col < len(names) else f"column {col + 1}"
        what = "an empty value" if match["value"] == "''" else f"the non-numeric value {match['value']}"
        rule = ("labels must be integer class labels 0..k-1" if 0 <= col < len(names) and names[col] == LABEL_COLUMN
                else "every column must be a number")
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
