"""Datasets: generated sets and the real sets that ship inside scikit-learn.

Generated: 2-D point sets, images (`bars`) and sequences (`adding`, `recall`);
uploaded: a client's own arrays (core.datasets.uploaded), handed over by the worker;
core/experiment/spec.py `DatasetSpec` says what each one asks. Images and
sequences come in their own shape (`Dataset.sample_shape`: height x width x
channels, steps x channels) for a layer list; `Dataset.flattened` gives the
MLP one vector per sample. Everything is drawn from the spec's seed, so the
same spec gives the same arrays on every machine. Nothing is downloaded.

Example:
    >>> from core.experiment.spec import DatasetSpec
    >>> data = load_dataset(DatasetSpec(), seed=1)
    >>> data.x_train.shape, data.n_classes
    ((1000, 2), 2)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from sklearn import datasets as sk

from core.experiment.spec import DatasetKind, DatasetSpec, dataset_shape, sample_shape

Arrays = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Dataset:
    """Float32 samples and int32 labels (float32 targets for regression), split into
    train and validation. `n_classes` is 0 for regression."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    n_classes: int

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def n_features(self) -> int:
        """Values in one sample."""
        return int(np.prod(self.sample_shape))

    @property
    def regression(self) -> bool:
        return self.n_classes == 0

    @property
    def has_validation(self) -> bool:
        return len(self.y_val) > 0

    def flattened(self) -> Dataset:
        """The same data with each sample as one vector, as the MLP takes it."""
        if len(self.sample_shape) == 1:
            return self
        return replace(
            self,
            x_train=self.x_train.reshape(len(self.x_train), self.n_features),
            x_val=self.x_val.reshape(len(self.x_val), self.n_features),
        )

    def baseline_loss(self) -> float | None:
        """Regression: the mean squared error of always predicting the training targets'
        mean, what a network that learned nothing scores (None for classification)."""
        if not self.regression:
            return None
        return float(np.mean(np.square(self.y_train - self.y_train.mean())))


def load_dataset(spec: DatasetSpec, *, seed: int) -> Dataset:
    """Build the dataset a spec names, split and (where asked) standardized.

    Samples come in `sample_shape(spec)`; standardizing scales each of their
    values (each pixel, each step's channel) on its own.
    """
    rng = np.random.default_rng(seed)
    x, y = _load_arrays(spec, rng)
    x = x.astype(np.float32).reshape(len(x), -1)
    # The spec's own class count, not the labels': it sized the output layer.
    _, _, n_classes = dataset_shape(spec)
    y = y.astype(np.float32 if spec.regression else np.int32)
    n_val = round(len(y) * spec.validation_split)
    if n_val:
        order = rng.permutation(len(y))
        x, y = x[order], y[order]
        if spec.regression:
            validation = np.arange(len(y)) < n_val  # already shuffled
        else:
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
    shape = sample_shape(spec)
    return Dataset(
        x_train=np.ascontiguousarray(x_train, dtype=np.float32).reshape(-1, *shape),
        y_train=y_train,
        x_val=np.ascontiguousarray(x_val, dtype=np.float32).reshape(-1, *shape),
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


def _balanced_labels(rng: np.random.Generator, n: int, classes: int) -> np.ndarray:
    """`n` labels, each class as often as the others (to one), in random order."""
    return rng.permutation(np.arange(n) % classes).astype(np.int32)


def _bars(spec: DatasetSpec, state: int) -> Arrays:
    """Images with a horizontal (0) or a vertical (1) bar half their size long,
    anywhere, in Gaussian noise of S.D. `noise`: the noise sets how hard it is."""
    rng = np.random.default_rng(state)
    n, size = spec.n_samples, spec.image_size
    y = _balanced_labels(rng, n, 2)
    length = size // 2
    along = rng.integers(0, size - length + 1, size=n)  # where the bar starts
    across = rng.integers(0, size, size=n)  # its row (horizontal) or column
    images = rng.normal(0.0, spec.noise, size=(n, size, size)).astype(np.float32)
    steps = np.arange(length)
    rows = np.where(y[:, None] == 0, across[:, None], along[:, None] + steps)
    cols = np.where(y[:, None] == 0, along[:, None] + steps, across[:, None])
    images[np.arange(n)[:, None], rows, cols] += 1.0
    return images.reshape(n, size, size, 1), y


def _adding(spec: DatasetSpec, state: int) -> Arrays:
    """The adding problem: values in [0, 1) and a marker channel flagging two of
    them, one in each half; the target is the sum of the two flagged values."""
    rng = np.random.default_rng(state)
    n, steps = spec.n_samples, spec.sequence_length
    values = rng.uniform(0.0, 1.0, size=(n, steps))
    half = steps // 2
    first = rng.integers(0, half, size=n)
    second = rng.integers(half, steps, size=n)
    markers = np.zeros((n, steps))
    rows = np.arange(n)
    markers[rows, first] = markers[rows, second] = 1.0
    target = values[rows, first] + values[rows, second]
    return np.stack([values, markers], axis=-1), target


def _recall(spec: DatasetSpec, state: int) -> Arrays:
    """A symbol out of `classes` at the first step (flagged in the last channel);
    after it each step is blank, or (a share `noise` of them, at most 1) a random
    symbol. The label is the first symbol; chance is 1 / classes."""
    rng = np.random.default_rng(state)
    n, steps, classes = spec.n_samples, spec.sequence_length, spec.classes
    y = _balanced_labels(rng, n, classes)
    symbols = rng.integers(0, classes, size=(n, steps))
    shown = rng.uniform(size=(n, steps)) < min(spec.noise, 1.0)
    shown[:, 0] = True
    symbols[:, 0] = y
    x = np.zeros((n, steps, classes + 1), dtype=np.float32)
    rows, times = np.nonzero(shown)
    x[rows, times, symbols[rows, times]] = 1.0
    x[:, 0, classes] = 1.0
    return x, y


def _uploaded(spec: DatasetSpec, state: int) -> Arrays:
    """The arrays a worker read from the store (`DatasetSpec.provide`), checked against the
    shape the spec was validated with."""
    if spec.provided is None:
        raise ValueError(f"the arrays of uploaded dataset {spec.id} were not provided")
    x, y = spec.provided
    data = spec.uploaded
    if len(y) != data.samples or list(x.shape[1:]) != data.sample_shape:
        raise ValueError(
            f"dataset {spec.id} holds {len(y)} samples of shape {list(x.shape[1:])}, not "
            f"the {data.samples} of shape {data.sample_shape} its spec was checked with"
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
    DatasetKind.BARS: _bars,
    DatasetKind.ADDING: _adding,
    DatasetKind.RECALL: _recall,
    DatasetKind.UPLOADED: _uploaded,
}
