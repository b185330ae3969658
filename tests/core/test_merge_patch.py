"""JSON merge patches behave as RFC 7396 says (its appendix A's examples)."""

from __future__ import annotations

from typing import Any

import pytest

from core.experiment.merge_patch import merge_patch, patch_paths

RFC_7396_EXAMPLES: list[tuple[Any, Any, Any]] = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "expected"), RFC_7396_EXAMPLES)
def test_rfc_7396_examples(target: Any, patch: Any, expected: Any) -> None:
    assert merge_patch(target, patch) == expected


def test_neither_argument_changes() -> None:
    target = {"model": {"initializer": {"kind": "random_normal", "stddev": 1.0}}}
    patch = {"model": {"initializer": {"kind": "he_normal"}}}
    merged = merge_patch(target, patch)
    merged["model"]["initializer"]["stddev"] = 5.0
    assert target["model"]["initializer"] == {"kind": "random_normal", "stddev": 1.0}
    assert patch == {"model": {"initializer": {"kind": "he_normal"}}}


def test_patch_paths_name_each_leaf() -> None:
    patch = {"training": {"clipnorm": 1.0, "clipvalue": None}, "model": {"batch_norm": True}}
    assert dict(patch_paths(patch)) == {
        "training.clipnorm": 1.0,
        "training.clipvalue": None,
        "model.batch_norm": True,
    }
