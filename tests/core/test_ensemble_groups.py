"""Which children share a graph: only runs that differ in seed, name, initializer or
hidden activations."""

from __future__ import annotations

from typing import Any

from core.experiment.grouping import (
    MAX_MEMBERS,
    ensemble_groups,
    ensemble_key,
    graph_signature,
    group_signature,
)
from core.experiment.spec import ExperimentSpec


def spec(**sections: Any) -> ExperimentSpec:
    return ExperimentSpec.model_validate({"seed": 1, **sections})


def test_seeds_names_initializers_and_activations_share_a_graph() -> None:
    first = spec(name="a", model={"initializer": {"kind": "glorot_uniform"}})
    second = spec(seed=2, name="b", model={"initializer": {"kind": "random_normal", "stddev": 3}})
    third = spec(model={"activation": ["tanh", "relu", "elu", "sigmoid"]})
    assert ensemble_key(first) == ensemble_key(second) == ensemble_key(third) is not None


def test_anything_the_graph_depends_on_keeps_runs_apart() -> None:
    base = ensemble_key(spec())
    for other in (
        spec(model={"hidden_layers": [5, 5]}),
        spec(model={"batch_norm": True}),
        spec(training={"optimizer": {"kind": "adam"}}),
        spec(training={"optimizer": {"learning_rate": 0.01}}),
        spec(training={"batch_size": 16}),
        spec(training={"epochs": 50}),
        spec(dataset={"noise": 0.2}),
        spec(capture={"every": "step", "histogram_bins": 10}),
        spec(device="gpu"),
    ):
        assert ensemble_key(other) not in (None, base), other


def test_runs_clipped_by_norm_or_capturing_raw_train_alone() -> None:
    assert ensemble_key(spec(training={"clipnorm": 1.0})) is None
    assert ensemble_key(spec(training={"clipvalue": 1.0})) is not None
    assert ensemble_key(spec(capture={"raw": True})) is None
    alone = [spec(training={"clipnorm": 1.0}), spec(seed=2, training={"clipnorm": 1.0})]
    assert ensemble_groups(alone) == [[0], [1]]


def test_groups_are_of_even_sizes_within_the_bound() -> None:
    activations = ["sigmoid", "tanh", "relu"]
    specs = [
        spec(seed=seed, model={"activation": activation})
        for seed in range(1, 5)
        for activation in activations
    ]
    # 12 members, at most 8 a group: two of six, whatever their activations
    assert ensemble_groups(specs) == [list(range(6)), list(range(6, 12))]
    many = [spec(seed=seed) for seed in range(1, 2 * MAX_MEMBERS + 2)]
    sizes = [len(group) for group in ensemble_groups(many)]
    assert sizes == [6, 6, 5] and sum(sizes) == 2 * MAX_MEMBERS + 1 > 2 * MAX_MEMBERS
    assert [len(group) for group in ensemble_groups(many[:5], max_members=2)] == [2, 2, 1]
    assert ensemble_groups(many[:3], max_members=1) == [[0], [1], [2]]


def test_groups_follow_the_order_of_their_first_member() -> None:
    depths = [[5] * depth for depth in (2, 3)]
    specs = [
        spec(model={"hidden_layers": hidden, "activation": activation})
        for activation in ("tanh", "relu")
        for hidden in depths
    ]
    alone = spec(training={"clipnorm": 1.0})
    assert ensemble_groups([*specs, alone]) == [[0, 2], [1, 3], [4]]


def test_a_group_of_members_alike_is_named_by_their_graph_else_by_all_of_theirs() -> None:
    tanh, relu = spec(model={"activation": "tanh"}), spec(model={"activation": "relu"})
    assert group_signature([tanh, spec(seed=9, model={"activation": "tanh"})]) == (
        graph_signature(tanh)
    )
    mixed = group_signature([tanh, relu])
    assert mixed not in (graph_signature(tanh), graph_signature(relu))
    assert mixed != group_signature([relu, tanh])
