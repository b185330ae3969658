"""A client's own files: parsed and checked, each bad one refused naming where it fails."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from core.datasets.uploaded import (
    DatasetFileError,
    Task,
    UploadLimits,
    pack,
    parse_dataset,
    unpack,
)

LIMITS = UploadLimits(samples=100, features=20, classes=5, values=1000)


def csv(*rows: str) -> bytes:
    return ("\n".join(rows) + "\n").encode()


GOOD = csv("a,b,label", "0,1,0", "1,0,1", "0.5,0.5,0", "1,1,1", "2,2,1")


def npz(**arrays: object) -> bytes:
    out = io.BytesIO()
    np.savez(out, **arrays)  # type: ignore[arg-type]
    return out.getvalue()


def refused(body: bytes, **options: object) -> DatasetFileError:
    with pytest.raises(DatasetFileError) as caught:
        parse_dataset(body, limits=LIMITS, **options)  # type: ignore[arg-type]
    return caught.value


def test_a_csv_gives_float_features_and_class_indices() -> None:
    data = parse_dataset(GOOD, limits=LIMITS)
    assert data.x.dtype == np.float32 and data.x.shape == (5, 2)
    assert data.y.tolist() == [0, 1, 0, 1, 1] and data.classes == ["0", "1"]
    assert data.task is Task.CLASSIFICATION and data.target_range is None
    assert len(data.content_hash) == 64


def test_named_labels_and_another_label_column() -> None:
    body = csv("kind,x", "cat,1", "dog,2", "cat,3", "dog,4")
    data = parse_dataset(body, limits=LIMITS, label="kind")
    assert data.classes == ["cat", "dog"] and data.y.tolist() == [0, 1, 0, 1]


def test_a_regression_keeps_its_targets() -> None:
    data = parse_dataset(GOOD.replace(b",1\n", b",2.5\n"), limits=LIMITS, task=Task.REGRESSION)
    assert data.y.dtype == np.float32 and data.target_range == (0.0, 2.5)
    assert data.classes is None


def test_an_npz_of_images_keeps_their_shape_and_packs_back() -> None:
    x = np.random.default_rng(1).normal(size=(6, 4, 4, 1))
    data = parse_dataset(npz(x=x, y=np.array([0, 1, 2, 0, 1, 2])), limits=LIMITS)
    assert data.sample_shape == (4, 4, 1) and data.classes == ["0", "1", "2"]
    x_back, y_back = unpack(pack(data))
    assert np.array_equal(x_back, x.astype(np.float32)) and y_back.tolist() == data.y.tolist()


@pytest.mark.parametrize(
    ("body", "options", "where", "words"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00", {}, "file", "neither an NPZ nor a CSV"),
        (csv("a,b,label", "0,1,0", "1,0"), {}, "row 3", "has 2 fields"),
        (csv("a,b,label", "0,1,0", "1,x,1"), {}, "row 3, column 'b'", "not a number"),
        (csv("a,b,label", "0,1,0", '1,"' + "9" * 200_000), {}, "row 3", "not valid CSV"),
        (csv("a,b,label", "0,1,0", "nan,1,1"), {}, "row 3, column 'a'", "NaN"),
        (csv("a,b,label", "0,inf,0", "1,1,1"), {}, "row 2, column 'b'", "infinite"),
        (csv("a,b,c", "0,1,0", "1,1,1"), {}, "row 1", "no label column 'label'"),
        (csv("a,label", "0,1", "1,1", "2,1", "3,1"), {}, "column 'label'", "one class"),
        (
            csv("a,label", "0,1", "1,1", "2,1", "3,1"),
            {"task": Task.REGRESSION},
            "column 'label'",
            "every target is 1",
        ),
        (
            csv("a,label", *[f"{i},{i}" for i in range(12)]),
            {},
            "column 'label'",
            "12 classes exceed the limit of 5",
        ),
        (csv("a,label", "0,1", "1,2"), {}, "file", "2 samples; send at least 4"),
        (
            csv("a,label", *[f"{i},{i % 2}" for i in range(101)]),
            {},
            "row 102",
            "limit of 100 samples",
        ),
        (
            csv(",".join(f"f{i}" for i in range(21)) + ",label", *["0," * 21 + "1"] * 4),
            {},
            "row 1",
            "21 feature columns exceed the limit of 20",
        ),
        (npz(x=np.zeros((4, 2)), y=np.zeros(3)), {}, "array y", "3 labels for the 4 samples"),
        (npz(x=np.zeros(4), y=np.zeros(4)), {}, "array x", "has shape [4]"),
        (npz(x=np.full((4, 2), np.nan), y=np.arange(4) % 2), {}, "array x", "NaN"),
        (npz(x=np.zeros((4, 2))), {}, "array y", "missing"),
        (npz(x=np.zeros((4, 2)), y=np.zeros(4), z=np.zeros(1)), {}, "array 'z'", "nothing else"),
        (
            npz(x=np.zeros((4, 2)), y=np.array([{"a": 1}] * 4, dtype=object)),
            {},
            "array y",
            "pickled",
        ),
        (npz(x=np.zeros((100, 100)), y=np.zeros(100)), {}, "array x", "declares"),
        (b"PK\x03\x04 not really a zip", {}, "file", "not a readable NPZ"),
    ],
)
def test_bad_files_are_refused_naming_where(
    body: bytes, options: dict[str, object], where: str, words: str
) -> None:
    error = refused(body, **options)
    assert error.where == where, error
    assert words in error.reason, error


def test_a_zip_bomb_is_refused_before_it_is_unpacked() -> None:
    """A member that declares a modest size but unpacks past it stops at the declared size."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x.npy", b"\x00" * 50_000_000)
        archive.writestr("y.npy", b"\x00" * 10)
    body = out.getvalue()
    assert len(body) < 100_000
    assert refused(body).kind == "dataset-too-large"
