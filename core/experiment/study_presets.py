"""The tutorial's comparisons as ready studies, for `GET /v1/presets` and `POST /v1/studies`.

Each compares the tutorial's network (core.experiment.presets) along an axis or
two: its activations, the initializers Glorot & Bengio compare, and the fixes
(batch normalization, residual connections) for a deeper sigmoid net.

Example:
    >>> body = study_preset("tutorial").study
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.experiment.presets import (
    BARS,
    CONV_DEPTH,
    DEEP,
    DEEPER,
    GLOROT,
    NORMAL_0_1,
    RECALL,
    Shown,
    cell,
    conv_stack,
    layered_spec,
    tutorial_spec,
)


@dataclass(frozen=True, slots=True)
class StudyPreset(Shown):
    """A named comparison study (`POST /v1/studies` body) with what it shows."""

    study: Mapping[str, Any]


TUTORIAL_BASE = tutorial_spec("tutorial", DEEP, "sigmoid", NORMAL_0_1)
DEEP_SIGMOID = tutorial_spec("deep-sigmoid", DEEPER, "sigmoid", NORMAL_0_1)

STUDY_PRESETS: tuple[StudyPreset, ...] = (
    StudyPreset(
        "tutorial",
        "sigmoid vs tanh vs relu, 4 hidden layers, N(0, 1)",
        "The tutorial's comparison: the same 2-5-5-5-5-1 network with each hidden "
        "activation, every kernel drawn from N(0, 1). Sigmoid's gradients vanish toward "
        "the input (0.588 accuracy in the tutorial); tanh and relu train (0.993, 0.994).",
        {"base": TUTORIAL_BASE, "axes": {"model.activation": ["sigmoid", "tanh", "relu"]}},
    ),
    StudyPreset(
        "initializers",
        "N(0, 1) vs Glorot uniform vs He normal, for sigmoid, tanh and relu",
        "The tutorial's next step and Glorot & Bengio's comparison: each initializer with "
        "each activation on the tutorial's four-hidden-layer network (9 configurations).",
        {
            "base": TUTORIAL_BASE,
            "axes": {
                "model.initializer": [NORMAL_0_1, GLOROT, {"kind": "he_normal"}],
                "model.activation": ["sigmoid", "tanh", "relu"],
            },
        },
    ),
    StudyPreset(
        "fixes",
        "a deep sigmoid net, with and without batch norm and residual connections",
        "Ten sigmoid layers of 8 units drawn from N(0, 1) barely learn; batch normalization "
        "and residual connections each let the gradient reach the first layers.",
        {
            "base": DEEP_SIGMOID,
            "axes": {"model.batch_norm": [False, True], "model.residual": [False, True]},
        },
    ),
)

STUDY_PRESETS += (
    StudyPreset(
        "recurrent-cells",
        "SimpleRNN vs GRU vs LSTM, recalling a symbol 10, 50 and 100 steps back",
        "Each cell of 16 units (Keras' initializers) on `recall` with blank steps after the "
        "symbol, at three lengths: how far back ||dL/dh_t|| reaches (the through_time "
        "plot) and whether the cell remembers. The textbook (Bengio, Simard & Frasconi "
        "1994; Hochreiter & Schmidhuber 1997) expects the plain cell's gradient to vanish "
        "and the gated ones' to carry; measured on this task over seeds 1 to 3 (README), "
        "it went the other way: SimpleRNN solved all three lengths, GRU and LSTM stayed "
        "at chance at 100 steps. One task and one training budget: not a ranking of cells.",
        {
            "base": layered_spec("recurrent-cells", RECALL, [cell("LSTM")], 30),
            "axes": {
                "model.layers": [[cell("SimpleRNN")], [cell("GRU")], [cell("LSTM")]],
                "dataset.sequence_length": [10, 50, 100],
            },
        },
    ),
    StudyPreset(
        "conv-depth",
        f"{CONV_DEPTH} convolutions: plain, batch-normalized, residual",
        f"{CONV_DEPTH} 3x3 convolutions of 8 filters on `bars` (16x16, noise 0.5): with "
        "sigmoid, plain, batch-normalized and residual, and plain with relu.",
        {
            "base": layered_spec("conv-depth", BARS, conv_stack(CONV_DEPTH, "sigmoid"), 20),
            "axes": {
                "model.layers": [
                    conv_stack(CONV_DEPTH, "sigmoid"),
                    conv_stack(CONV_DEPTH, "sigmoid", norm=True),
                    conv_stack(CONV_DEPTH, "sigmoid", residual=True),
                    conv_stack(CONV_DEPTH, "relu"),
                ],
            },
        },
    ),
)

_STUDIES_BY_NAME = {study.name: study for study in STUDY_PRESETS}


def study_preset(name: str) -> StudyPreset:
    """The study preset called `name`; raises KeyError."""
    return _STUDIES_BY_NAME[name]
