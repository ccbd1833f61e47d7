"""Reading and checking uploads: every bad file is refused with a message that names the problem."""

from __future__ import annotations

import io
import pickle
import tempfile

import numpy as np
import pytest

from core.settings import Limits
from core.upload_parsing import UploadInvalid, parse_upload
from tests.sample_uploads import (as_csv, as_npz, blobs, declared_huge_npz, npy_header, npz_of,
                                   truncated_member_npz)

X, Y = blobs(rows_per_class=4)


def parse(data: bytes, filename: str, limits: Limits | None = None):
    return parse_upload(io.BytesIO(data), filename, limits or Limits())


def refusal(data: bytes, filename: str, limits: Limits | None = None) -> UploadInvalid:
    with pytest.raises(UploadInvalid) as info:
        parse(data, filename, limits)
    return info.value


def test_npz_and_csv_of_the_same_data_read_the_same():
    from_npz, from_csv = parse(as_npz(X, Y), "d.npz"), parse(as_csv(X, Y), "d.csv")
    assert from_npz.x.dtype == np.float32 and from_npz.y.dtype == np.int64
    np.testing.assert_array_equal(from_npz.x, from_csv.x)
    np.testing.assert_array_equal(from_npz.y, from_csv.y)
    assert from_csv.feature_names == ["f0", "f1", "f2", "f3"] and from_npz.feature_names is None
    assert from_csv.class_counts() == {"0": 4, "1": 4, "2": 4}
    ranges = from_csv.feature_ranges()
    assert ranges[0]["name"] == "f0" and ranges[0]["min"] == pytest.approx(float(X[:, 0].min()))
    assert ranges[2]["std"] == pytest.approx(float(X[:, 2].astype(np.float64).std()))


def test_the_label_column_may_be_anywhere_and_quoted_bom_prefixed_csv_reads():
    data = '\ufeff"label",a,b\n1,"2.5",3\n0,1,1\n1,4,4\n0,0,0\n'.encode()
    parsed = parse(data, "d.csv")
    assert parsed.feature_names == ["a", "b"]
    np.testing.assert_array_equal(parsed.y, [1, 0, 1, 0])
    assert parsed.x[0].tolist() == [2.5, 3.0]


def test_without_a_suffix_the_content_decides():
    assert parse(as_npz(X, Y), "upload").format == "npz"
    assert parse(as_csv(X, Y), "upload").format == "csv"


@pytest.mark.parametrize("data,filename,expected", [
    (b"", "d.csv", "empty"),
    (b"a,b\n", "d.xlsx", "Unsupported file type '.xlsx'"),
    (b"a,b,label\n1,x,0\n", "d.csv", "Data row 1, column 'b': the non-numeric value 'x'"),
    (b"a,b,label\n1,2,0\n3,4\n", "d.csv", "Data row 2 has 2 columns but the header has 3"),
    (b"a,b,label\n1,,0\n", "d.csv", "column 'b': an empty value"),
    (b"a,b,label\n1,2,cat\n", "d.csv", "column 'label': the non-numeric value 'cat'; labels must be integer"),
    (b"a,b,class\n1,2,0\n", "d.csv", "no 'label' column; its header is: a, b, class"),
    (b"a,a,label\n1,2,0\n", "d.csv", "names column 'a' twice"),
    (b"a,,label\n1,2,0\n", "d.csv", "Header column 2 has no name"),
    (b"label\n0\n1\n", "d.csv", "at least one feature column"),
    (b"a,label\n", "d.csv", "no data rows"),
    (b"a,label\n\xff,0\n", "d.csv", "not UTF-8"),
    (b"a,label\nnan,0\n1,0\n2,1\n3,1\n", "d.csv", "1 value is NaN or infinite"),
    (b"a,label\n1e39,0\n1,0\n2,1\n3,1\n", "d.csv", "beyond float32's range"),
    (b"a,label\n1,0\n2,0\n", "d.csv", "At least 2 classes"),
    (b"a,label\n1,0\n2,0\n3,2\n4,2\n", "d.csv", "1 has no rows"),
    (b"a,label\n1,1\n2,1\n3,2\n4,2\n", "d.csv", "0 has no rows"),
    (b"a,label\n1,0\n2,0\n3,1\n", "d.csv", "too small: 1 (1 row)"),
    (b"a,label\n1,0\n2,0.5\n", "d.csv", "integer class labels; row 2 has 0.5"),
    (b"a,label\n1,0\n2,-1\n", "d.csv", "0 or more"),
    (b"a,label\n1,0\n2,7\n", "d.csv", "the largest is 7 but there are only 2 rows"),
    (b"garbage", "d.npz", "Not an .npz file"),
    (b"PK\x03\x04garbage", "d.npz", "Not a readable .npz file"),
    (pickle.dumps({"X": [1]}), "d.npz", "Not an .npz file"),
    (as_npz(X, Y[:-1]), "d.npz", "X has 12 rows but y has 11 labels"),
    (as_npz(X.ravel(), Y), "d.npz", "X must be 2-dimensional"),
    (as_npz(X, Y.reshape(-1, 1)), "d.npz", "y must be 1-dimensional"),
    (as_npz(X.astype(str), Y), "d.npz", "X must be numeric"),
    (as_npz(X, np.array(["a"] * 12)), "d.npz", "y must hold integer class labels"),
    (as_npz(np.array([[1, "a"]] * 12, dtype=object), Y), "d.npz", "cannot be read without pickle"),
    (as_npz(np.where(np.arange(48).reshape(12, 4) == 5, np.inf, X), Y), "d.npz", "row 2, feature 1"),
])
def test_bad_uploads_are_refused_naming_the_problem(data, filename, expected):
    problem = refusal(data, filename)
    assert expected in str(problem) and not problem.too_large


def test_an_npz_without_x_or_y_says_what_it_holds():
    buffer = io.BytesIO()
    np.savez(buffer, features=X, labels=Y)
    assert "missing X, y (it holds: features, labels)" in str(refusal(buffer.getvalue(), "d.npz"))
    single = io.BytesIO()
    np.save(single, X)
    assert "single .npy array" in str(refusal(single.getvalue(), "d.npz"))


def test_row_feature_and_decompressed_size_limits():
    assert "4 features; at most 3" in str(refusal(as_npz(X, Y), "d.npz", Limits(max_upload_features=3)))
    assert "4 feature columns; at most 3" in str(refusal(as_csv(X, Y), "d.csv", Limits(max_upload_features=3)))
    assert "More than 10 rows" in str(refusal(as_npz(X, Y), "d.npz", Limits(max_upload_rows=10)))
    assert "More than 10 rows" in str(refusal(as_csv(X, Y), "d.csv", Limits(max_upload_rows=10)))
    zeros = as_npz(np.zeros((2000, 50), np.float32), np.arange(2000) % 2, compressed=True)
    assert len(zeros) < 20_000
    bomb = refusal(zeros, "d.npz", Limits(max_upload_bytes=100_000))
    assert bomb.too_large and "once decompressed" in str(bomb)


def test_more_classes_than_the_operator_allows_are_refused_naming_the_cap():
    x, y = blobs(rows_per_class=2, classes=12)
    error = refusal(as_npz(x, y), "d.npz", Limits(max_classes=10))
    assert "12 classes" in str(error) and "TRAINRX_MAX_CLASSES" in str(error) and not error.too_large
    assert parse(as_npz(x, y), "d.npz", Limits(max_classes=12)).y.max() == 11


def test_an_npz_header_is_checked_before_anything_is_allocated():
    huge = refusal(declared_huge_npz(), "d.npz")
    assert huge.too_large and "80,008,000,000 bytes as their headers declare them" in str(huge)
    wide = npz_of({"X.npy": npy_header((10, 20_000)), "y.npy": npy_header((10,), "<i8")})
    assert "20,000 features; at most 10,000" in str(refusal(wide, "d.npz"))
    pickled = npz_of({"X.npy": npy_header((12, 4), "|O"), "y.npy": npy_header((12,), "<i8")})
    assert "cannot be read without pickle (dtype object)" in str(refusal(pickled, "d.npz"))


def test_a_conversion_past_the_limit_is_refused_before_it_is_made():
    """1 byte per boolean, 4 per float32: the bool array fits the limit, its float32 copy would not."""
    bombs = as_npz(np.zeros((50_000, 10), bool), (np.arange(50_000) % 2).astype(np.uint8), compressed=True)
    assert len(bombs) < 5_000
    problem = refusal(bombs, "d.npz", Limits(max_upload_bytes=1_000_000))
    assert problem.too_large and "2,400,000 bytes once converted to float32 and int64" in str(problem)


@pytest.mark.parametrize("data,expected", [
    (as_npz(X, Y)[:200], "Not a readable .npz file"),
    (truncated_member_npz(X, Y), "X is damaged in the .npz"),
    (npz_of({"X.npy": b"\x93NUMPY\x09\x00junk", "y.npy": b""}), "X is not a readable .npy array"),
    (npz_of({"X.npy": b"not an array", "y.npy": b""}), "X is not a readable .npy array"),
])
def test_damaged_npz_files_are_refused(data, expected):
    assert expected in str(refusal(data, "d.npz"))


def test_a_corrupt_deflate_stream_is_refused():
    data = bytearray(as_npz(np.tile(X, (50, 1)), np.tile(Y, 50), compressed=True))
    data[len(data) // 3: len(data) // 3 + 40] = b"\xff" * 40
    assert "Bad CRC-32 for file 'X.npy'" in str(refusal(bytes(data), "d.npz"))


@pytest.mark.parametrize("data,expected", [
    (b"a" * 200_000 + b",label\n1,0\n", "header could not be read: field larger than field limit (131072)"),
    (b'"a,label\n1,0\n', "no 'label' column"),
])
def test_csv_errors_are_named(data, expected):
    assert expected in str(refusal(data, "d.csv"))


def test_the_child_process_reads_like_this_process_and_refuses_the_same(tmp_path):
    from core.upload_sandbox import parse_in_child

    for data, name in ((as_npz(X, Y), "d.npz"), (as_csv(X, Y), "d.csv")):
        here, there = parse(data, name), parse_in_child(_file(tmp_path, data), name, Limits(), tmp_path / "work")
        np.testing.assert_array_equal(here.x, there.x)
        np.testing.assert_array_equal(here.y, there.y)
        assert (here.format, here.feature_names) == (there.format, there.feature_names)
        assert here.description() == there.description()
    with pytest.raises(UploadInvalid) as info:
        parse_in_child(_file(tmp_path, declared_huge_npz()), "d.npz", Limits(), tmp_path / "work")
    assert info.value.too_large and "as their headers declare them" in str(info.value)
    assert list((tmp_path / "work").iterdir()) == []


def _file(folder, data: bytes):
    stream = tempfile.TemporaryFile(dir=folder)
    stream.write(data)
    stream.seek(0)
    return stream


# --- regression uploads --------------------------------------------------------

def regression(data: bytes, filename: str) -> object:
    return parse_upload(io.BytesIO(data), filename, Limits(), "regression")


def regression_refusal(data: bytes, filename: str) -> str:
    with pytest.raises(UploadInvalid) as info:
        regression(data, filename)
    return str(info.value)


def test_regression_targets_stay_floats_in_both_formats():
    targets = np.linspace(-3.5, 1e6, len(Y)).astype(np.float32)
    from_npz = regression(as_npz(X, targets), "d.npz")
    assert from_npz.task == "regression" and from_npz.y.dtype == np.float32
    np.testing.assert_array_equal(from_npz.y, targets)
    lines = as_csv(X, Y).decode().splitlines()  # the label column, rewritten with fractional targets
    rows = [",".join([*line.split(",")[:-1], repr(float(t))]) for line, t in zip(lines[1:], targets)]
    from_csv = regression("\n".join([lines[0], *rows]).encode(), "d.csv")
    np.testing.assert_array_equal(from_csv.y, targets)
    assert from_npz.class_counts() == {} and from_npz.target_summary()["max"] == pytest.approx(1e6)
    assert from_npz.description()["target"] == from_npz.target_summary()


def test_fractional_labels_are_refused_unless_the_upload_is_regression():
    targets = np.full(len(Y), 0.5)
    targets[0] = 1.25
    assert "integer class labels" in str(refusal(as_npz(X, targets), "d.npz"))
    assert regression(as_npz(X, targets), "d.npz").y[0] == 1.25


@pytest.mark.parametrize("bad, message", [(np.nan, "NaN or infinite"), (np.inf, "NaN or infinite"),
                                          (1e39, "beyond float32's range")])
def test_a_regression_target_that_is_not_a_finite_float32_is_named(bad, message):
    targets = np.arange(len(Y), dtype=np.float64)
    targets[5] = bad
    text = regression_refusal(as_npz(X, targets), "d.npz")
    assert message in text and "row 6" in text


def test_regression_needs_varying_targets_and_two_rows():
    assert "vary" in regression_refusal(as_npz(X, np.full(len(Y), 3.0)), "d.npz")
    assert "at least 2 rows" in regression_refusal(as_npz(X[:1], np.array([1.0])), "d.npz")
    assert "numbers" in regression_refusal(b"a,label\n1,x\n2,3\n", "d.csv")
