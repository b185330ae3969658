"""What a spec costs: its network's shapes and parameters, its steps, the numbers its
result holds, and the limits that span several fields (`check_limits`, which every
`ExperimentSpec` passes as it is validated).

Example:
    >>> spec = ExperimentSpec()
    >>> layer_widths(spec), parameter_count(spec)
    ([2, 5, 5, 5, 5, 1], 111)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from core.experiment.layer_configs import DenseConfig, KerasActivation
from core.experiment.layer_shapes import (
    LayerShape,
    ShapeError,
    conv_channels,
    infer_shapes,
    layer_members,
    probes_activations,
    weight_parts,
)
from core.experiment.layers import make_layer
from core.experiment.limits import Limits, SpecLimitError
from core.experiment.spec import (
    CaptureEvery,
    DatasetKind,
    DatasetSpec,
    ExperimentSpec,
    dataset_shape,
    output_units,
    sample_shape,
    split_sizes,
)


def layer_widths(spec: ExperimentSpec) -> list[int]:
    """Input, hidden and output widths of the MLP, e.g. [2, 5, 5, 5, 5, 1]."""
    _, features, _ = dataset_shape(spec.dataset)
    return [features, *spec.model.hidden_layers, output_units(spec.dataset)]


@dataclass(frozen=True)
class LayeredShapes:
    """A layer list's layers as the data flows through them, and its output layer."""

    hidden: list[LayerShape]  # the list, less a leading InputLayer and a pasted output
    output: LayerShape  # a Dense named "output", pasted or made to fit the data

    @property
    def layers(self) -> list[LayerShape]:
        return [*self.hidden, self.output]

    @property
    def parameters(self) -> int:
        return sum(layer.parameters for layer in self.layers)

    @property
    def flops(self) -> int:
        """Forward float operations per sample (a training step costs ~3x)."""
        return sum(layer.flops for layer in self.layers)

    @property
    def timesteps(self) -> int:
        """Time steps the recurrent layers run one after another, per forward pass."""
        return sum(_timesteps(layer) for layer in self.hidden)


def _timesteps(layer: LayerShape) -> int:
    return layer.timesteps + sum(_timesteps(inner) for inner in layer.inner)


def _output_activations(dataset: DatasetSpec) -> set[KerasActivation]:
    """What a pasted output layer may apply: a softmax, sigmoid or none (logits)."""
    if dataset.regression:
        return {KerasActivation.LINEAR}
    last = KerasActivation.SIGMOID if output_units(dataset) == 1 else KerasActivation.SOFTMAX
    return {KerasActivation.LINEAR, last}


def layered_shapes(spec: ExperimentSpec) -> LayeredShapes | None:
    """The shapes of `spec.model.layers` on its data (None for the MLP).

    Raises `SpecLimitError` naming the first layer that cannot take its input.
    """
    layers = spec.model.layers
    if layers is None:
        return None
    units = output_units(spec.dataset)
    last = layers[-1]
    pasted = (
        isinstance(last.config, DenseConfig)
        and last.config.units == units
        and last.config.activation in _output_activations(spec.dataset)
        and len(layers) > 1
    )
    try:
        hidden = infer_shapes(layers[:-1] if pasted else layers, sample_shape(spec.dataset))
    except ShapeError as error:
        raise SpecLimitError(error.path, error.message) from None
    _refuse_hidden_softmax(hidden)
    end = hidden[-1].output_shape if hidden else sample_shape(spec.dataset)
    if len(end) != 1:
        raise SpecLimitError(
            "model.layers",
            f"the layers must end in one vector per sample; they end in shape {list(end)}: "
            "add Flatten or a GlobalAveragePooling layer",
        )
    output_layer = last if pasted else make_layer("Dense", {"units": units})
    path = f"model.layers[{len(layers) - 1}]" if pasted else "model.layers"
    fan_in = end[0]
    output = LayerShape(
        output_layer, path, "output", end, (units,), (fan_in + 1) * units, 2 * fan_in * units
    )
    return LayeredShapes(hidden, output)


def _refuse_hidden_softmax(shapes: Sequence[LayerShape]) -> None:
    for shape in shapes:
        config = shape.layer.config
        if getattr(config, "activation", None) is KerasActivation.SOFTMAX:
            raise SpecLimitError(
                f"{shape.path}.config.activation", "softmax is for the output layer only"
            )
        _refuse_hidden_softmax(shape.inner)


def parameter_count(spec: ExperimentSpec) -> int:
    shapes = layered_shapes(spec)
    if shapes is not None:
        return shapes.parameters
    widths = layer_widths(spec)
    dense = sum((a + 1) * b for a, b in itertools.pairwise(widths))
    norm = 4 * sum(spec.model.hidden_layers) if spec.model.batch_norm else 0
    return dense + norm


def steps_per_epoch(spec: ExperimentSpec) -> int:
    n_train, _ = split_sizes(spec.dataset)
    return -(-n_train // spec.training.batch_size)


def result_values(spec: ExperimentSpec) -> int:
    """How many numbers result.json's series, histograms, through-time and per-channel
    gradient norms hold for `spec` (at most)."""
    capture = spec.capture
    steps = spec.training.epochs * steps_per_epoch(spec)
    points = steps if capture.every is CaptureEvery.STEP else spec.training.epochs
    hidden = len(spec.model.hidden_layers)
    # variables, probed layers, kernels (histograms), through-time norms per point
    variables, probed, kernels = 2 * (hidden + 1), hidden, hidden + 1
    # The through-time and per-channel sections: a gradient norm per column (a recurrent
    # layer's time step, a convolution's channel) at each point, each column's number
    # and initial norm, and each layer's `epoch` and `step` of every point.
    columns = sections = 0
    shapes = layered_shapes(spec)
    if shapes is not None:
        members = layer_members(shapes.layers)
        variables = sum(len(weight_parts(layer.class_name)) for layer in members)
        probed = sum(probes_activations(layer) for layer in members)
        kernels = sum("kernel" in weight_parts(layer.class_name) for layer in members)
        convolutions = conv_channels(shapes.layers)
        recurrent = sum(layer.timesteps > 0 for layer in members)
        columns = shapes.timesteps + sum(filters for _, filters in convolutions)
        sections = recurrent + len(convolutions)
        columns, sections = columns * int(capture.gradients), sections * int(capture.gradients)
    # Per variable: 4 weight statistics and the update ratio, 4 of the gradient.
    per_variable = 5 * int(capture.weights) + 4 * int(capture.gradients)
    per_point = variables * per_variable + 5 * probed * int(capture.activations) + 2
    per_point += columns + 2 * sections
    kinds = int(capture.weights) + int(capture.gradients)
    snapshots = capture.histogram_snapshots if capture.histograms else 0
    histograms = snapshots * kernels * kinds * (2 * capture.histogram_bins + 1)
    return points * per_point + histograms + 2 * columns


def check_limits(spec: ExperimentSpec) -> None:
    """Refuse sizes that span fields; each message names the field and the limit."""
    if spec.dataset.kind is DatasetKind.UPLOADED and spec.dataset.data is None:
        return  # checked once the service has filled in the uploaded data's shape
    samples, _, classes = dataset_shape(spec.dataset)
    if spec.dataset.generated and samples < 2 * classes:
        # Fewer and a generator fails (gaussian) or leaves a class out, and the
        # network's output would not be as wide as the classes it was promised.
        raise SpecLimitError(
            "dataset.n_samples",
            f"{samples} samples are fewer than 2 for each of {classes} classes; "
            f"send at least {2 * classes}",
        )
    values = samples * math.prod(sample_shape(spec.dataset))
    if values > Limits.DATA_VALUES:
        raise SpecLimitError(
            "dataset.n_samples",
            f"{samples:,} samples of {math.prod(sample_shape(spec.dataset)):,} values each "
            f"exceed the limit of {Limits.DATA_VALUES:,} values",
        )
    n_train, _ = split_sizes(spec.dataset)
    if n_train < 2:
        raise SpecLimitError("dataset.validation_split", "leaves fewer than 2 training samples")
    if spec.training.batch_size > n_train:
        raise SpecLimitError(
            "training.batch_size",
            f"{spec.training.batch_size} exceeds the {n_train} training samples",
        )
    shapes = layered_shapes(spec)
    params = parameter_count(spec)
    if params > Limits.PARAMETERS:
        raise SpecLimitError(
            "model.hidden_layers" if shapes is None else "model.layers",
            f"{params:,} parameters exceed the limit of {Limits.PARAMETERS:,}",
        )
    steps = spec.training.epochs * steps_per_epoch(spec)
    if steps > Limits.STEPS:
        raise SpecLimitError(
            "training.epochs",
            f"{steps:,} optimizer steps (epochs x batches) exceed the limit of {Limits.STEPS:,}",
        )
    if shapes is None:
        _check_mlp_work(spec, n_train, params)
    else:
        _check_layered_work(spec, shapes, n_train)
    if spec.capture.every is CaptureEvery.STEP and steps > Limits.STEP_CAPTURE_POINTS:
        raise SpecLimitError(
            "capture.every",
            f"capturing every step records {steps:,} points, over the limit of "
            f"{Limits.STEP_CAPTURE_POINTS:,}; capture every epoch or train fewer steps",
        )
    if spec.capture.raw:
        points = steps if spec.capture.every is CaptureEvery.STEP else spec.training.epochs
        kinds = int(spec.capture.weights) + int(spec.capture.gradients)
        values = kinds * points * params
        if values > Limits.RAW_VALUES:
            raise SpecLimitError(
                "capture.raw",
                f"{values:,} raw values ({kinds} x capture points x parameters) exceed the "
                f"limit of {Limits.RAW_VALUES:,}",
            )
    values = result_values(spec)
    if values > Limits.RESULT_VALUES:
        raise SpecLimitError(
            "capture",
            f"the result would hold {values:,} numbers (capture points x layers x the "
            f"statistics captured, the histograms, and the gradient norms per time step "
            f"and per convolution channel), over the limit of {Limits.RESULT_VALUES:,}; "
            "capture every epoch, fewer statistics, fewer epochs or a smaller network",
        )
    widths = spec.model.hidden_layers
    if spec.model.residual and not any(a == b for a, b in itertools.pairwise(widths)):
        raise SpecLimitError(
            "model.residual",
            "needs at least two consecutive hidden layers of equal width",
        )


def _check_mlp_work(spec: ExperimentSpec, n_train: int, params: int) -> None:
    work = spec.training.epochs * n_train * params
    if work > Limits.WORK:
        raise SpecLimitError(
            "training.epochs",
            f"{spec.training.epochs:,} epochs x {n_train:,} training samples x {params:,} "
            f"parameters = {work:.3g} sample-parameter passes exceed the limit of "
            f"{Limits.WORK:.3g}; train fewer epochs, on fewer samples or a smaller network",
        )


def _check_layered_work(spec: ExperimentSpec, shapes: LayeredShapes, n_train: int) -> None:
    """A layer list's arithmetic per step and per job, its time steps, its through-time capture."""
    step = 3 * shapes.flops * spec.training.batch_size
    if step > Limits.STEP_FLOPS:
        raise SpecLimitError(
            "training.batch_size",
            f"one optimizer step of {spec.training.batch_size} samples x {shapes.flops:,} "
            f"forward operations x 3 = {step:.3g} float operations exceeds the limit of "
            f"{Limits.STEP_FLOPS:.3g} (about half a second); use smaller batches or layers",
        )
    _check_probe(spec, shapes, n_train)
    timesteps = shapes.timesteps
    if timesteps > Limits.STEP_TIMESTEPS:
        raise SpecLimitError(
            "dataset.sequence_length",
            f"the recurrent layers run {timesteps:,} time steps one after another per pass, "
            f"over the limit of {Limits.STEP_TIMESTEPS:,}; use shorter sequences or fewer "
            "recurrent layers",
        )
    work = 3 * shapes.flops * n_train * spec.training.epochs
    # the probe's forward passes, at each epoch's start and end (core.engine.trainer)
    probing = _probe_rows(spec, n_train) * shapes.flops * 2 * spec.training.epochs
    if work + probing > Limits.FLOPS:
        probes = f" + {probing:.3g} probing at the epochs' edges" if probing else ""
        raise SpecLimitError(
            "training.epochs",
            f"{spec.training.epochs:,} epochs x {n_train:,} training samples x "
            f"{shapes.flops:,} forward operations x 3 = {work:.3g}{probes} float operations "
            f"exceed the limit of {Limits.FLOPS:.3g}; train fewer epochs, on fewer samples or "
            "a smaller network",
        )
    run = spec.training.epochs * steps_per_epoch(spec) * timesteps
    if run > Limits.RUN_TIMESTEPS:
        raise SpecLimitError(
            "training.epochs",
            f"{spec.training.epochs:,} epochs x {steps_per_epoch(spec):,} steps x {timesteps:,} "
            f"time steps = {run:,} recurrent time steps exceed the limit of "
            f"{Limits.RUN_TIMESTEPS:,}; train fewer epochs, with larger batches or shorter "
            "sequences",
        )


def _probe_rows(spec: ExperimentSpec, n_train: int) -> int:
    """Samples the activation probe forward-passes at each capture point (as the engine
    draws it: at most the training samples; none with activations off)."""
    return min(spec.capture.probe_size, n_train) if spec.capture.activations else 0


def _check_probe(spec: ExperimentSpec, shapes: LayeredShapes, n_train: int) -> None:
    """The probe's forward pass runs in one call (core.engine.chunks), alone at an
    epoch's edges (a step point's activations come from its own batch, not the probe).
    Bound it as a step is bound, so a cancel still lands within about a second."""
    rows = _probe_rows(spec, n_train)
    call = shapes.flops * rows
    if call > Limits.STEP_FLOPS:
        raise SpecLimitError(
            "capture.probe_size",
            f"the probe's forward pass of {rows:,} samples x {shapes.flops:,} operations "
            f"= {call:.3g} float operations exceeds the limit of "
            f"{Limits.STEP_FLOPS:.3g} (about half a second, one call a cancel waits for); "
            "use a smaller probe or switch activations off",
        )
