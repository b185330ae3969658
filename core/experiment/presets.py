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


# Eight 3x3 filters, padded to keep the image's size, then relu.
_CONV_3X3 = {
    "class_name": "Conv2D",
    "config": {"filters": 8, "kernel_size": 3, "padding": "same", "activation": "relu"},
}

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

# ------------------------------------------------------------ beyond the MLP


def cell(class_name: str, units: int = 16, **config: Any) -> dict[str, Any]:
    """A recurrent layer as Keras writes it (the essentials)."""
    return {"class_name": class_name, "config": {"units": units, **config}}


def conv_stack(
    depth: int, activation: str, *, norm: bool = False, residual: bool = False
) -> list[dict[str, Any]]:
    """`depth` 3x3 convolutions of 8 filters on an image, then a global average.

    With `norm`, each convolution is batch-normalized before its activation;
    with `residual`, every convolution after the first is wrapped in a skip
    connection (x + f(x)).
    """
    conv: dict[str, Any] = {
        "class_name": "Conv2D",
        "config": {"filters": 8, "kernel_size": 3, "padding": "same"},
    }
    act = {"class_name": "Activation", "config": {"activation": activation}}
    block = [conv, {"class_name": "BatchNormalization"}, act] if norm else [conv, act]
    layers = list(block)
    for _ in range(depth - 1):
        layers += [{"class_name": "Residual", "config": {"layers": block}}] if residual else block
    return [*layers, {"class_name": "GlobalAveragePooling2D"}]


RECALL = {"kind": "recall", "classes": 4, "n_samples": 1000, "sequence_length": 50, "noise": 0.0}
ADDING = {"kind": "adding", "n_samples": 1000, "sequence_length": 100}
BARS = {"kind": "bars", "image_size": 16, "noise": 0.5, "n_samples": 1000}
CONV_DEPTH = 8


def layered_spec(
    name: str, dataset: dict[str, Any], layers: list[dict[str, Any]], epochs: int
) -> dict[str, Any]:
    return {
        "name": name,
        "dataset": dataset,
        "model": {"layers": layers},
        "training": {"optimizer": {"kind": "adam"}, "epochs": epochs, "batch_size": 32},
    }


PRESETS += (
    Preset(
        "lstm-adding",
        "LSTM(32) on the adding problem, 100 steps",
        "Hochreiter & Schmidhuber's adding problem: the sum of two marked values of 100. "
        "Its loss is read against `metrics.baseline.loss`, predicting the mean (~0.167).",
        layered_spec("lstm-adding", ADDING, [cell("LSTM", 32)], 30),
    ),
    Preset(
        "lstm-recall",
        "LSTM(16): recall the first of 100 steps",
        "A symbol, then 99 blank steps: which was it? The LSTM's gradient with respect to its "
        "early hidden states vanishes (the through_time plot) and it stays at chance (0.25) "
        "over seeds 1 to 3; a SimpleRNN with its orthogonal recurrent kernel solves it (the "
        "recurrent-cells study).",
        layered_spec("lstm-recall", {**RECALL, "sequence_length": 100}, [cell("LSTM")], 30),
    ),
    Preset(
        "conv-digits",
        "a small convolutional network on digits (8x8x1)",
        "Two 3x3 convolutions, pooling and a dense layer on scikit-learn's digits as images.",
        layered_spec(
            "conv-digits",
            {"kind": "digits"},
            [
                *[_CONV_3X3] * 2,
                {"class_name": "MaxPooling2D"},
                {"class_name": "Flatten"},
                {"class_name": "Dense", "config": {"units": 32, "activation": "relu"}},
            ],
            20,
        ),
    ),
)

_BY_NAME = {preset.name: preset for preset in PRESETS}


def preset(name: str) -> Preset:
    """The preset called `name`; raises KeyError."""
    return _BY_NAME[name]
