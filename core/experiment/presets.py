"""The tutorial's experiments as ready specs, for `GET /v1/presets`.

The vanishing-gradient tutorial (after Glorot & Bengio, 2010) trains MLPs on
`make_circles` with RMSprop for 100 epochs. Its shallow 2-5-1 and 2-5-5-5-1
models keep Keras' default initializer (Glorot uniform); its 2-5-5-5-5-1
models (four hidden layers of five) draw every kernel from N(0, 1) to make the
vanishing gradients plain. The Glorot variants are the fix the tutorial ends
on; `deeper-sigmoid-normal`, ten layers, shows the effect starker than the
tutorial could. Specs leave the seed out, so each run draws one and records it.

Example:
    >>> spec = ExperimentSpec.model_validate(preset("deep-sigmoid-normal").spec)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Shown:
    """What a preset is called and what it shows."""

    name: str
    title: str
    description: str


@dataclass(frozen=True, slots=True)
class Preset(Shown):
    """A named spec with what it shows."""

    spec: Mapping[str, Any]


NORMAL_0_1 = {"kind": "random_normal", "mean": 0.0, "stddev": 1.0}
GLOROT = {"kind": "glorot_uniform"}  # Glorot & Bengio's "normalized initialization"
DEEP = [5, 5, 5, 5]  # the tutorial's 2-5-5-5-5-1
# Deeper than the tutorial's net, so sigmoid's vanishing gradients are stark; the
# widths are equal, as residual connections need.
DEEPER = [8] * 10


def tutorial_spec(
    name: str, hidden: list[int], activation: str, initializer: dict[str, Any]
) -> dict[str, Any]:
    """The tutorial's spec (its data, optimizer, epochs and batch) for another network."""
    return {
        "name": name,
        "dataset": {"kind": "circles", "n_samples": 1000, "noise": 0.1, "factor": 0.5},
        "model": {"hidden_layers": hidden, "activation": activation, "initializer": initializer},
        "training": {"optimizer": {"kind": "rmsprop"}, "epochs": 100, "batch_size": 32},
    }


def _preset(
    name: str,
    title: str,
    description: str,
    hidden: list[int],
    activation: str,
    init: dict[str, Any],
) -> Preset:
    return Preset(name, title, description, tutorial_spec(name, hidden, activation, init))


PRESETS: tuple[Preset, ...] = (
    _preset(
        "shallow-relu",
        "2-5-1, relu",
        "One hidden layer of 5 relu units: trains well (the tutorial reports 0.973 accuracy).",
        [5],
        "relu",
        GLOROT,
    ),
    _preset(
        "shallow-sigmoid",
        "2-5-1, sigmoid",
        "One hidden layer of 5 sigmoid units: learns slowly (0.654 in the tutorial).",
        [5],
        "sigmoid",
        GLOROT,
    ),
    _preset(
        "medium-sigmoid",
        "2-5-5-5-1, sigmoid",
        "Three sigmoid hidden layers: barely better than chance (0.533 in the tutorial).",
        [5, 5, 5],
        "sigmoid",
        GLOROT,
    ),
    _preset(
        "deep-sigmoid-normal",
        "4 hidden layers, sigmoid, N(0, 1)",
        "The tutorial's main case: gradient means near zero in every layer but the last, "
        "S.D. around 0.01 to 0.001 (0.588 accuracy in the tutorial).",
        DEEP,
        "sigmoid",
        NORMAL_0_1,
    ),
    _preset(
        "deep-tanh-normal",
        "4 hidden layers, tanh, N(0, 1)",
        "Same network with tanh: gradients an order of magnitude larger (0.993 in the tutorial).",
        DEEP,
        "tanh",
        NORMAL_0_1,
    ),
    _preset(
        "deep-relu-normal",
        "4 hidden layers, relu, N(0, 1)",
        "Same network with relu: trains well (0.994 in the tutorial).",
        DEEP,
        "relu",
        NORMAL_0_1,
    ),
    _preset(
        "deep-sigmoid-glorot",
        "4 hidden layers, sigmoid, Glorot",
        "The tutorial's suggested next step: Glorot (normalized) initialization for sigmoid.",
        DEEP,
        "sigmoid",
        GLOROT,
    ),
    _preset(
        "deep-tanh-glorot",
        "4 hidden layers, tanh, Glorot",
        "tanh with Glorot initialization, the pairing Glorot & Bengio recommend.",
        DEEP,
        "tanh",
        GLOROT,
    ),
    _preset(
        "deep-relu-glorot",
        "4 hidden layers, relu, Glorot",
        "relu with Glorot initialization, for comparison with N(0, 1).",
        DEEP,
        "relu",
        GLOROT,
    ),
    _preset(
        "deeper-sigmoid-normal",
        "10 hidden layers of 8, sigmoid, N(0, 1)",
        "Deeper than the tutorial: over seeds 1 to 3 the first layer's gradient was "
        "1/4,800 to 1/127,000 of the output layer's, and accuracy stayed at chance (0.5).",
        DEEPER,
        "sigmoid",
        NORMAL_0_1,
    ),
)

_BY_NAME = {preset.name: preset for preset in PRESETS}


def preset(name: str) -> Preset:
    """The preset called `name`; raises KeyError."""
    return _BY_NAME[name]
