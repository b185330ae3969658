"""Datasets: generated 2-D sets and the real sets that ship inside scikit-learn.

Everything is drawn from the spec's seed, so the same spec gives the same
arrays on every machine. Nothing is downloaded.

Example:
    >>> from core.experiment.spec import DatasetSpec
    >>> data = load_dataset(DatasetSpec(), seed=1)
    >>> data.x_train.shape, data.n_classes
    ((1000, 2), 2)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn import datasets as sk

from core.experiment.spec import DatasetKind, DatasetSpec, dataset_shape

Arrays = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Dataset:
    """Float32 features and int32 labels, split into train and validation."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    n_classes: int

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def has_validation(self) -> bool:
        return len(self.y_val) > 0


def load_dataset(spec: DatasetSpec, *, seed: int) -> Dataset:
    """Build the dataset a spec names, split and (where asked) standardized."""
    rng = np.random.default_rng(seed)
    x, y = _load_arrays(spec, rng)
    x, y = x.astype(np.float32), y.astype(np.int32)
    # The spec's own class count, not the labels': it sized the output layer.
    _, _, n_classes = dataset_shape(spec)
    n_val = round(len(y) * spec.validation_split)
    if n_val:
        order = rng.permutation(len(y))
        x, y = x[order], y[order]
        validation = _stratified(y, n_val, n_classes)
    else:
        validation = np.zeros(len(y), dtype=bool)
    x_train, y_train = x[~validation], y[~validation]
    x_val, y_val = x[validation], y[validation]
    if spec.standardized:
        # Statistics from the training part only, so validation stays unseen.
        mean = x_train.mean(axis=0)
        std = x_train.std(axis=0)
        std[std == 0] = 1.0
        x_train = (x_train - mean) / std
        x_val = (x_val - mean) / std
    return Dataset(
        x_train=np.ascontiguousarray(x_train, dtype=np.float32),
        y_train=y_train,
        x_val=np.ascontiguousarray(x_val, dtype=np.float32),
        y_val=y_val,
        n_classes=n_classes,
    )


def _stratified(y: np.ndarray, n_val: int, n_classes: int) -> np.ndarray:
    """A mask of exactly `n_val` rows for validation, each class in proportion.

    Every class gives its share (largest remainders round up), taken from its
    first rows in the already shuffled order. A class of two or more keeps at
    least one training row, so training never loses a class to the split
    (at most half the rows go to validation).
    """
    n = len(y)
    counts = np.bincount(y, minlength=n_classes)
    take, remainder = np.divmod(counts * n_val, n)  # integers: the total is exact
    extra = n_val - int(take.sum())
    take[np.argsort(-remainder, kind="stable")[:extra]] += 1
    by_class = np.argsort(y, kind="stable")
    rank = np.empty(n, dtype=np.int64)  # each row's place among its class's rows
    rank[by_class] = np.arange(n) - np.repeat(np.cumsum(counts) - counts, counts)
    mask: np.ndarray = rank < take[y]
    return mask


def _load_arrays(spec: DatasetSpec, rng: np.random.Generator) -> Arrays:
    state = int(rng.integers(2**31 - 1))
    return _LOADERS[spec.kind](spec, state)


def _circles(spec: DatasetSpec, state: int) -> Arrays:
    return sk.make_circles(
        n_samples=spec.n_samples, factor=spec.factor, noise=spec.noise, random_state=state
    )


def _moons(spec: DatasetSpec, state: int) -> Arrays:
    return sk.make_moons(n_samples=spec.n_samples, noise=spec.noise, random_state=state)


def _xor(spec: DatasetSpec, state: int) -> Arrays:
    """Uniform points in [-1, 1]^2, labelled by the sign of x0 * x1, then jittered.

    Half the points (one more for an odd count) are drawn in each label's two
    quadrants rather than labelled after the draw, so even the smallest set
    has both classes.
    """
    rng = np.random.default_rng(state)
    n = spec.n_samples
    y = rng.permutation(np.arange(n) % 2).astype(np.int32)
    first = rng.choice([-1.0, 1.0], size=n)
    signs = np.column_stack([first, np.where(y == 1, first, -first)])
    x = rng.uniform(0.0, 1.0, size=(n, 2)) * signs
    return x + rng.normal(0.0, spec.noise, size=x.shape), y


def _gaussian(spec: DatasetSpec, state: int) -> Arrays:
    """Concentric Gaussian shells, the class set by quantiles of the radius."""
    return sk.make_gaussian_quantiles(
        n_samples=spec.n_samples,
        n_features=2,
        n_classes=spec.classes,
        cov=1.0 + spec.noise,
        random_state=state,
    )


def _spiral(spec: DatasetSpec, state: int) -> Arrays:
    """Interleaved spiral arms, one per class, with Gaussian noise on the angle."""
    rng = np.random.default_rng(state)
    per_class = np.full(spec.classes, spec.n_samples // spec.classes)
    per_class[: spec.n_samples % spec.classes] += 1
    points, labels = [], []
    for label, count in enumerate(per_class):
        radius = np.linspace(0.05, 1.0, count)
        angle = (
            radius * spec.turns * 2 * np.pi
            + label * 2 * np.pi / spec.classes
            + rng.normal(0.0, spec.noise, size=count)
        )
        points.append(np.column_stack([radius * np.sin(angle), radius * np.cos(angle)]))
        labels.append(np.full(count, label))
    order = rng.permutation(spec.n_samples)
    return np.concatenate(points)[order], np.concatenate(labels)[order]


def _blobs(spec: DatasetSpec, state: int) -> Arrays:
    x, y = sk.make_blobs(
        n_samples=spec.n_samples,
        n_features=2,
        centers=spec.centers,
        cluster_std=spec.cluster_std,
        random_state=state,
    )
    return x, y


def _real(
    loader: Callable[..., tuple[np.ndarray, np.ndarray]],
) -> Callable[[DatasetSpec, int], Arrays]:
    def load(spec: DatasetSpec, state: int) -> Arrays:
        return loader(return_X_y=True)

    return load


_LOADERS: dict[DatasetKind, Callable[[DatasetSpec, int], Arrays]] = {
    DatasetKind.CIRCLES: _circles,
    DatasetKind.MOONS: _moons,
    DatasetKind.XOR: _xor,
    DatasetKind.GAUSSIAN: _gaussian,
    DatasetKind.SPIRAL: _spiral,
    DatasetKind.BLOBS: _blobs,
    DatasetKind.DIGITS: _real(sk.load_digits),
    DatasetKind.BREAST_CANCER: _real(sk.load_breast_cancer),
    DatasetKind.IRIS: _real(sk.load_iris),
    DatasetKind.WINE: _real(sk.load_wine),
}
