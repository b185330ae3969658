"""JSON merge patches (RFC 7396): how a prescription says what to change in a spec.

A merge patch is plain JSON a client can apply with any RFC 7396 library (or
read by eye): objects merge key by key, `null` removes a key (the spec's
default applies again), anything else replaces. gradwatch applies the
prescribed patches itself when it proves them in a study.

Example:
    >>> merge_patch({"model": {"activation": "sigmoid", "batch_norm": False}},
    ...             {"model": {"batch_norm": True}, "training": {"clipvalue": None}})
    {'model': {'activation': 'sigmoid', 'batch_norm': True}, 'training': {}}
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any


def merge_patch(target: Any, patch: Any) -> Any:
    """`target` with `patch` applied, as RFC 7396 defines it; neither argument changes."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    merged = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return {key: copy.deepcopy(value) for key, value in merged.items()}


def patch_paths(patch: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Each leaf of a patch as (dotted path, value): `("model.batch_norm", True)`.

    `None` stands for a key the patch removes (back to the spec's default).
    """
    for key, value in patch.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, Mapping) and value:
            yield from patch_paths(value, path)
        else:
            yield path, value
