"""Which of a study's children can train together in one graph (core.engine.ensemble).

Children may share a graph when their specs differ only in what the graph
does not depend on: the seed (and with it the data, its order and the
starting weights), the name and the kernel initializer. Some runs are
always trained alone: clipping by norm spans a whole stacked tensor, raw
capture keeps every tensor of every step, and the side-by-side trainer is the
MLP's alone (a layer list, or a regression, trains alone: see the README).

TensorFlow-free: the API groups children when it queues a study.

Example:
    >>> groups = ensemble_groups(specs)      # [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8, 11]]
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
    del shape["model"]["initializer"]
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


def ensemble_groups(
    specs: Sequence[ExperimentSpec], *, max_members: int = MAX_MEMBERS
) -> list[list[int]]:
    """Indexes of `specs` in groups that may train together, in order of first member.

    A group holds at most `max_members`; a spec that trains alone is a group of one.
    """
    open_groups: dict[bytes, list[int]] = {}
    groups: list[list[int]] = []
    for index, spec in enumerate(specs):
        key = ensemble_key(spec)
        group = open_groups.get(key) if key is not None else None
        if group is None or len(group) >= max_members:
            group = []
            groups.append(group)
            if key is not None:
                open_groups[key] = group
        group.append(index)
    return groups
