"""Reading and checking uploads: every bad file is refused with a message that names the problem."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest

from core.settings import Limits
from core.upload_parsing import UploadInvalid, parse_upload
from tests.sample_uploads import as_csv, as_npz, blobs

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
