"""Datasets: right shapes and labels, deterministic from the seed, standardized by convention."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from core.datasets.builtin import load_dataset
from core.experiment.spec import DatasetKind, DatasetSpec, dataset_shape

BUILTIN = [kind for kind in DatasetKind if kind is not DatasetKind.UPLOADED]


@pytest.mark.parametrize("kind", BUILTIN)
def test_every_kind_matches_its_declared_shape(kind: DatasetKind) -> None:
    spec = DatasetSpec(kind=kind, n_samples=300, validation_split=0.2)
    data = load_dataset(spec, seed=3)
    samples, features, classes = dataset_shape(spec)
    assert len(data.y_train) + len(data.y_val) == samples
    assert len(data.y_val) == round(samples * 0.2)
    assert data.n_features == features
    assert data.n_classes == classes
    assert np.isfinite(data.x_train).all() and data.x_train.dtype == np.float32
    if spec.regression:
        assert classes == 0 and data.y_train.dtype == np.float32
        return
    assert set(np.unique(data.y_train)) <= set(range(classes))
    assert data.y_train.dtype == np.int32


def test_images_and_sequences_come_in_their_own_shape_and_flatten_for_the_mlp() -> None:
    shapes = {
        "digits": (8, 8, 1),
        "bars": (12, 12, 1),
        "adding": (30, 2),
        "recall": (30, 5),
    }
    for kind, shape in shapes.items():
        spec = DatasetSpec.model_validate(
            {"kind": kind, "image_size": 12, "sequence_length": 30, "classes": 4}
        )
        data = load_dataset(spec, seed=1)
        assert data.sample_shape == shape
        assert data.flattened().x_train.shape == (len(data.y_train), int(np.prod(shape)))


def test_adding_targets_are_the_sum_of_the_two_marked_values() -> None:
    data = load_dataset(DatasetSpec(kind=DatasetKind.ADDING, sequence_length=20), seed=4)
    values, markers = data.x_train[..., 0], data.x_train[..., 1]
    assert (markers.sum(axis=1) == 2).all()
    assert (markers[:, :10].sum(axis=1) == 1).all()  # one in each half
    np.testing.assert_allclose((values * markers).sum(axis=1), data.y_train, rtol=1e-6)
    assert abs(data.baseline_loss() - 1 / 6) < 0.03  # var of U(0,1) + U(0,1)


def test_recall_labels_are_the_first_symbol() -> None:
    spec = DatasetSpec(kind=DatasetKind.RECALL, sequence_length=15, classes=5, noise=1.0)
    data = load_dataset(spec, seed=2)
    np.testing.assert_array_equal(data.x_train[:, 0, :5].argmax(axis=1), data.y_train)
    assert (data.x_train[:, 0, 5] == 1).all() and (data.x_train[:, 1:, 5] == 0).all()
    assert (data.x_train[..., :5].sum(axis=-1) == 1).all()  # noise 1: a symbol each step
    quiet = load_dataset(spec.model_copy(update={"noise": 0.2}), seed=2).x_train[:, 1:, :5]
    assert 0.15 < quiet.sum(axis=-1).mean() < 0.25  # a fifth of the steps show a symbol


def test_bars_are_horizontal_or_vertical() -> None:
    spec = DatasetSpec(kind=DatasetKind.BARS, image_size=10, noise=0.0)
    data = load_dataset(spec, seed=5)
    images = data.x_train[..., 0]
    rows_lit = (images.sum(axis=2) > 0).sum(axis=1)
    np.testing.assert_array_equal(rows_lit == 1, data.y_train == 0)  # horizontal: one row


@pytest.mark.parametrize("kind", BUILTIN)
def test_same_seed_same_arrays(kind: DatasetKind) -> None:
    spec = DatasetSpec(kind=kind, n_samples=200, validation_split=0.1)
    first, again = load_dataset(spec, seed=7), load_dataset(spec, seed=7)
    np.testing.assert_array_equal(first.x_train, again.x_train)
    np.testing.assert_array_equal(first.y_train, again.y_train)
    np.testing.assert_array_equal(first.x_val, again.x_val)


@pytest.mark.parametrize("kind", ["circles", "moons", "xor", "gaussian", "spiral", "blobs"])
def test_generated_sets_change_with_the_seed(kind: str) -> None:
    spec = DatasetSpec(kind=DatasetKind(kind), n_samples=200)
    assert not np.array_equal(
        load_dataset(spec, seed=1).x_train, load_dataset(spec, seed=2).x_train
    )


def test_circles_are_the_tutorials() -> None:
    data = load_dataset(DatasetSpec(), seed=1)
    radius = np.linalg.norm(data.x_train, axis=1)
    # factor 0.5: the inner circle (label 1) has about half the outer radius
    inner, outer = radius[data.y_train == 1].mean(), radius[data.y_train == 0].mean()
    assert inner / outer == pytest.approx(0.5, abs=0.05)
    assert np.bincount(data.y_train).tolist() == [500, 500]


def test_standardized_from_training_part_only() -> None:
    data = load_dataset(DatasetSpec(kind=DatasetKind.WINE, validation_split=0.25), seed=1)
    np.testing.assert_allclose(data.x_train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(data.x_train.std(axis=0), 1, atol=1e-4)
    assert not np.allclose(data.x_val.mean(axis=0), 0, atol=1e-3)


def test_standardize_can_be_switched_off() -> None:
    data = load_dataset(DatasetSpec(kind=DatasetKind.IRIS, standardize=False), seed=1)
    assert data.x_train.max() > 5  # raw centimetres


# Generated sets at the fewest samples the spec allows: two per class.
EDGE_SPECS = [
    {"kind": "gaussian", "n_samples": 40, "classes": 20},
    {"kind": "spiral", "n_samples": 40, "classes": 20, "validation_split": 0.5},
    {"kind": "blobs", "n_samples": 8, "centers": 4, "validation_split": 0.5},
    {"kind": "blobs", "n_samples": 41, "centers": 20, "validation_split": 0.5},
    {"kind": "xor", "n_samples": 8},
    {"kind": "xor", "n_samples": 9, "validation_split": 0.5},
    {"kind": "circles", "n_samples": 8, "validation_split": 0.5},
    {"kind": "moons", "n_samples": 8, "validation_split": 0.5},
]


@pytest.mark.parametrize("fields", EDGE_SPECS, ids=lambda fields: str(sorted(fields.items())))
@pytest.mark.parametrize("seed", [1, 15, 99])
def test_the_smallest_sets_keep_every_class_in_training(fields: dict[str, Any], seed: int) -> None:
    spec = DatasetSpec.model_validate(fields)
    data = load_dataset(spec, seed=seed)
    samples, features, classes = dataset_shape(spec)
    assert data.n_classes == classes  # from the spec, whatever labels were drawn
    assert data.x_train.shape == (len(data.y_train), features)
    assert data.x_val.shape == (len(data.y_val), features)
    assert len(data.y_train) + len(data.y_val) == samples
    assert len(data.y_val) == round(samples * spec.validation_split)
    assert set(np.unique(data.y_train)) == set(range(classes))


@pytest.mark.parametrize("seed", range(20))
def test_xor_has_balanced_classes_at_any_size(seed: int) -> None:
    for n in (8, 9, 10, 101):
        labels = load_dataset(DatasetSpec(kind=DatasetKind.XOR, n_samples=n), seed=seed).y_train
        assert sorted(np.bincount(labels, minlength=2)) == [n // 2, n - n // 2]


def test_xor_labels_are_the_quadrants_before_the_jitter() -> None:
    data = load_dataset(DatasetSpec(kind=DatasetKind.XOR, n_samples=400, noise=0.0), seed=3)
    x, y = data.x_train, data.y_train
    np.testing.assert_array_equal(y, (x[:, 0] * x[:, 1] > 0).astype(np.int32))
    assert np.abs(x).max() <= 1.0


def test_validation_takes_each_class_in_proportion() -> None:
    spec = DatasetSpec(kind=DatasetKind.BLOBS, n_samples=300, centers=3, validation_split=0.2)
    data = load_dataset(spec, seed=5)
    assert np.bincount(data.y_val).tolist() == [20, 20, 20]
    assert np.bincount(data.y_train).tolist() == [80, 80, 80]
    # Both parts stay shuffled: no run of one class in the training order.
    assert len(np.unique(data.y_train[:20])) > 1


def uploaded(samples: int, shape: list[int], classes: int) -> DatasetSpec:
    data = {"name": "mine.csv", "samples": samples, "sample_shape": shape, "classes": classes}
    return DatasetSpec.model_validate(
        {
            "kind": "uploaded",
            "id": "01JD8X3Q7R5M2N4P6T8V0W2Y4Z",
            "data": data,
            "validation_split": 0.25,
        }
    )


def test_an_uploaded_set_is_split_by_class_and_standardized() -> None:
    rng = np.random.default_rng(0)
    spec = uploaded(40, [3, 2], 4)
    x = rng.normal(5.0, 3.0, size=(40, 3, 2)).astype(np.float32)
    spec.provide(x, (np.arange(40) % 4).astype(np.int32))
    data = load_dataset(spec, seed=1)
    assert data.sample_shape == (3, 2) and data.n_classes == 4 and spec.standardized
    assert sorted(np.bincount(data.y_val).tolist()) == [2, 2, 3, 3]  # 10 of 40, by class
    assert abs(float(data.x_train.mean())) < 1e-5


def test_uploaded_arrays_must_match_the_checked_shape() -> None:
    spec = uploaded(8, [2], 2)
    with pytest.raises(ValueError, match="not provided"):
        load_dataset(spec, seed=1)
    spec.provide(np.zeros((8, 3), np.float32), np.arange(8) % 2)
    with pytest.raises(ValueError, match="its spec was checked with"):
        load_dataset(spec, seed=1)
