"""Datasets: right shapes and labels, deterministic from the seed, standardized by convention."""

from __future__ import annotations

import numpy as np
import pytest

from core.datasets import load_dataset
from core.spec import DatasetKind, DatasetSpec, dataset_shape


@pytest.mark.parametrize("kind", list(DatasetKind))
def test_every_kind_matches_its_declared_shape(kind: DatasetKind) -> None:
    spec = DatasetSpec(kind=kind, n_samples=300, validation_split=0.2)
    data = load_dataset(spec, seed=3)
    samples, features, classes = dataset_shape(spec)
    assert len(data.y_train) + len(data.y_val) == samples
    assert len(data.y_val) == round(samples * 0.2)
    assert data.n_features == features
    assert data.n_classes == classes
    assert set(np.unique(data.y_train)) <= set(range(classes))
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int32
    assert np.isfinite(data.x_train).all()


@pytest.mark.parametrize("kind", list(DatasetKind))
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
