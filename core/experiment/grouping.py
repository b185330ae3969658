"""Which of a study's children can train together in one graph (core.engine.ensemble).

Children may share a graph when their specs differ only in what the graph
does not depend on: the seed (and with it the data, its order and the
starting weights), the name and the kernel initializer; or in the MLP's hidden
activations, which the graph applies member by member. Some runs are always
trained alone: clipping by norm spans a whole stacked tensor, raw capture keeps
every tensor of every step, and the side-by-side trainer is the MLP's alone (a
layer list, or a regression, trains alone: see the README).

TensorFlow-free: the API groups children when it queues a study.

Example:
    >>> groups = ensemble_groups(specs)      # 12 alike: [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]]
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import orjson

from core.experiment.spec import ExperimentSpec, dataset_shape, split_sizes

# Members per graph by default (Settings.ensemble_members). Under XLA on a 2-core
# CPU, four tutorial runs take 1.4x the time of one and eight 2.2x: past eight the
# step's arithmetic, not the overhead of running ops, is what costs, and larger
# groups would spread a study's children over fewer workers.
MAX_MEMBERS = 8


def ensemble_key(spec: ExperimentSpec) -> bytes | None:
    """What a shared graph depends on in `spec`; None for a run that trains alone."""
    if spec.training.clipnorm is not None or spec.capture.raw:
        return None
    if spec.model.layers is not None or spec.dataset.regression:
        return None
    shape: dict[str, Any] = spec.model_dump(mode="json", exclude={"seed", "name"})
    del shape["model"]["initializer"], shape["model"]["activation"]
    return orjson.dumps(shape, option=orjson.OPT_SORT_KEYS)


def graph_signature(spec: ExperimentSpec) -> str:
    """A short name for the compiled graph `spec` trains on: specs with equal signatures
    share one (their architecture, optimizer kind, clipping, batch, data sizes and
    capture are alike; seeds, initializers, learning rates, epochs and data noise
    may differ). A worker announces the ones it holds compiled (core.engine.graph_cache),
    so a job can go where its graph is warm.
    """
    _, features, classes = dataset_shape(spec.dataset)
    n_train, n_validation = split_sizes(spec.dataset)
    capture = spec.capture
    optimizer = spec.training.optimizer
    shape: dict[str, Any] = {
        "model": spec.model.model_dump(mode="json", exclude={"initializer"}),
        "data": [features, classes, n_train, n_validation],
        "training": [
            optimizer.kind.value,
            optimizer.momentum,
            optimizer.nesterov,
            spec.training.clipnorm,
            spec.training.clipvalue,
            spec.training.batch_size,
        ],
        "capture": [
            capture.every.value,
            capture.raw,
            min(capture.probe_size, n_train) if capture.activations else 0,
        ],
    }
    digest = hashlib.blake2b(orjson.dumps(shape, option=orjson.OPT_SORT_KEYS), digest_size=8)
    return digest.hexdigest()


def group_signature(specs: Sequence[ExperimentSpec]) -> str:
    """`graph_signature` of a group's shared graph: its members', where they are alike,
    else theirs in order, hashed (members of other activations make another graph)."""
    signatures = [graph_signature(spec) for spec in specs]
    if len(set(signatures)) == 1:
        return signatures[0]
    return hashlib.blake2b(" ".join(signatures).encode(), digest_size=8).hexdigest()


def ensemble_groups(
    specs: Sequence[ExperimentSpec], *, max_members: int = MAX_MEMBERS
) -> list[list[int]]:
    """Indexes of `specs` in groups that may train together, in order of first member.

    Specs that share a graph are split, in order, into as few groups of at most
    `max_members` as hold them, of sizes as even as can be, so that workers share
    them evenly. A spec that trains alone is a group of one.
    """
    alike: dict[bytes | int, list[int]] = {}
    for index, spec in enumerate(specs):
        key = ensemble_key(spec)
        alike.setdefault(index if key is None else key, []).append(index)
    groups: list[list[int]] = []
    for indexes in alike.values():
        count = -(-len(indexes) // max_members)
        size, more = divmod(len(indexes), count)
        start = 0
        for part in range(count):
            stop = start + size + (part < more)
            groups.append(indexes[start:stop])
            start = stop
    return sorted(groups, key=lambda group: group[0])
