"""The experiment spec: what a client asks for, validated at the edge.

A spec is data. Every size has a limit (see `Limits`), every choice is an
enum, and unknown fields are refused, so nothing a client sends can execute
code or exhaust a worker. Its defaults are the tutorial's sigmoid experiment:
`ExperimentSpec()` (or the JSON `{}`) is that experiment.

Example:
    >>> spec = ExperimentSpec.model_validate({"model": {"activation": "tanh"}})
    >>> spec.model.hidden_layers
    [5, 5, 5, 5]
"""

from __future__ import annotations

import itertools
import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StrictInt,
    field_validator,
    model_serializer,
    model_validator,
)

from core.experiment.layers import (
    DenseLayer,
    KerasActivation,
    LayerLimits,
    LayerShape,
    LayerSpec,
    ShapeError,
    infer_shapes,
    layer_count,
    probes_activations,
    weight_parts,
)


class Limits:
    """Upper bounds on every size a client controls.

    They keep one job within a few minutes of CPU and a few hundred MB of
    memory on a small worker; raise them in code, not per request.
    """

    SAMPLES = 20_000
    HIDDEN_LAYERS = 32
    WIDTH = 512
    PARAMETERS = 1_000_000
    EPOCHS = 1_000
    BATCH_SIZE = 4_096
    STEPS = 200_000  # epochs x batches per epoch
    # Sample-passes x parameters (epochs x training samples x parameters), the
    # arithmetic of a run: a dense net costs about 6 float operations per
    # parameter and sample (2 forward, 4 back), so 2e11 is ~1.2e12 operations,
    # a minute or two of a small worker's 2 cores at the 10-20 GFLOP/s small
    # matrix products reach, plus the capture. The tutorial is 100 x 1000 x
    # 141 = 1.4e7; digits through three 512-wide layers for 100 epochs, 1e11.
    WORK = 200_000_000_000
    STEP_CAPTURE_POINTS = 20_000  # capture points when capturing every step
    HISTOGRAM_BINS = 200
    HISTOGRAM_SNAPSHOTS = 20
    PROBE_SIZE = 4_096  # samples in the activation probe, forward-passed at each capture point
    RAW_VALUES = 2_500_000  # float32 values in arrays.npz (10 MB)
    # Numbers in result.json's series and histograms (about 20 bytes each in JSON):
    # capture points x layers x the statistics captured, so a result stays near 10 MB.
    RESULT_VALUES = 500_000
    NAME_LENGTH = 200
    CLASSES = 20
    CENTERS = 20
    SEED = 2**31 - 1
    SEQUENCE_LENGTH = 1_000
    IMAGE_SIZE = 64
    # Layer lists (core/experiment/layers.py) are bounded by their arithmetic,
    # counted per sample by `layers.infer_shapes` (a training step costs about 3x
    # its forward pass), and recurrent layers by their time steps, which run one
    # after another whatever their size. benchmarks/networks.py measured (on a
    # loaded 2-core machine, so a floor) ~3 GFLOP/s for small convolutions and
    # ~0.3-0.9 ms per time step forward and back for a small LSTM: these keep a
    # job to a few minutes and one step to about half a second.
    FLOPS = 5e11  # a job's float operations: 3 x forward per sample x samples x epochs
    STEP_FLOPS = 1.5e9  # one optimizer step's: 3 x forward per sample x batch
    STEP_TIMESTEPS = 1_500  # time steps of all recurrent layers in one pass
    # A job's time steps, optimizer steps x STEP_TIMESTEPS' count; it also bounds
    # the through-time gradient norms a result keeps (one per step and time step
    # at most).
    RUN_TIMESTEPS = 1_000_000
    DATA_VALUES = 20_000_000  # float32 values in a dataset (80 MB): samples x sample size


class SpecLimitError(ValueError):
    """A spec that breaks a limit spanning several fields.

    Carries the dotted path of the field to blame so the HTTP layer can name it.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, use_enum_values=False)


# --------------------------------------------------------------------------- dataset


class DatasetKind(StrEnum):
    CIRCLES = "circles"
    MOONS = "moons"
    XOR = "xor"
    GAUSSIAN = "gaussian"
    SPIRAL = "spiral"
    BLOBS = "blobs"
    DIGITS = "digits"
    BREAST_CANCER = "breast_cancer"
    IRIS = "iris"
    WINE = "wine"
    BARS = "bars"
    ADDING = "adding"
    RECALL = "recall"


GENERATED_KINDS = frozenset(
    {
        DatasetKind.CIRCLES,
        DatasetKind.MOONS,
        DatasetKind.XOR,
        DatasetKind.GAUSSIAN,
        DatasetKind.SPIRAL,
        DatasetKind.BLOBS,
        DatasetKind.BARS,
        DatasetKind.ADDING,
        DatasetKind.RECALL,
    }
)
SEQUENCE_KINDS = frozenset({DatasetKind.ADDING, DatasetKind.RECALL})
IMAGE_KINDS = frozenset({DatasetKind.DIGITS, DatasetKind.BARS})
# Regression sets: a linear output and mean squared error (core.engine.trainer).
REGRESSION_KINDS = frozenset({DatasetKind.ADDING})


class DatasetSpec(_Section):
    """Which data to train on.

    Generated 2-D sets take `n_samples` and `noise` plus their own parameters;
    the real sets ship inside scikit-learn and ignore both. `standardize`
    defaults to the convention: off for generated sets (the tutorial trains on
    raw `make_circles` output), on for the real ones.

    Images and sequences (core/datasets/builtin.py) reach a layer list in their
    own shape, height x width x channels or steps x channels (`digits` 8x8x1,
    `bars` image_size x image_size x 1, `adding` sequence_length x 2, `recall`
    sequence_length x (classes + 1)), and the MLP flattened:
    - `bars`: a horizontal or a vertical bar in Gaussian noise of S.D. `noise`;
      which is it? The noise sets the difficulty.
    - `adding` (Hochreiter & Schmidhuber 1997), a regression: two of the
      values in the first channel are marked in the second (one in each half of
      the sequence); the target is their sum. Predicting the mean scores an MSE
      of ~0.167, the baseline every result reports (`metrics.baseline`).
    - `recall`: a symbol out of `classes` at the first step; after it each step
      is blank or, a share `noise` of them, a random symbol. Which symbol came
      first? Chance is 1 / classes.
    """

    kind: DatasetKind = DatasetKind.CIRCLES
    n_samples: StrictInt = Field(1000, ge=8, le=Limits.SAMPLES)
    noise: float = Field(0.1, ge=0.0, le=10.0)
    factor: float = Field(0.5, gt=0.0, lt=1.0, description="circles: inner/outer radius")
    classes: StrictInt = Field(
        2, ge=2, le=Limits.CLASSES, description="spiral and gaussian: arms/classes"
    )
    centers: StrictInt = Field(3, ge=2, le=Limits.CENTERS, description="blobs: number of blobs")
    cluster_std: float = Field(1.0, gt=0.0, le=10.0, description="blobs: spread of each blob")
    turns: float = Field(1.5, gt=0.0, le=5.0, description="spiral: turns of each arm")
    sequence_length: StrictInt = Field(
        50, ge=2, le=Limits.SEQUENCE_LENGTH, description="adding and recall: time steps"
    )
    image_size: StrictInt = Field(
        16, ge=4, le=Limits.IMAGE_SIZE, description="bars: height and width in pixels"
    )
    validation_split: float = Field(0.0, ge=0.0, le=0.5)
    standardize: bool | None = None

    @property
    def generated(self) -> bool:
        return self.kind in GENERATED_KINDS

    @property
    def standardized(self) -> bool:
        return (not self.generated) if self.standardize is None else self.standardize

    @property
    def regression(self) -> bool:
        return self.kind in REGRESSION_KINDS


# ----------------------------------------------------------------------------- model


class Activation(StrEnum):
    SIGMOID = "sigmoid"
    TANH = "tanh"
    RELU = "relu"
    LEAKY_RELU = "leaky_relu"
    ELU = "elu"
    SELU = "selu"
    GELU = "gelu"
    SWISH = "swish"
    SOFTSIGN = "softsign"
    LINEAR = "linear"


BOUNDED_ACTIVATIONS = frozenset({Activation.SIGMOID, Activation.TANH, Activation.SOFTSIGN})
# Activations that pass neither signal nor gradient where the pre-activation is
# <= 0: a unit that is there on every input is dead.
DYING_ACTIVATIONS = frozenset({Activation.RELU})
# Rectifier-like activations; all but relu still pass some gradient below zero.
RELU_FAMILY = frozenset(
    {
        Activation.RELU,
        Activation.LEAKY_RELU,
        Activation.ELU,
        Activation.SELU,
        Activation.GELU,
        Activation.SWISH,
    }
)


class InitializerKind(StrEnum):
    RANDOM_NORMAL = "random_normal"
    RANDOM_UNIFORM = "random_uniform"
    TRUNCATED_NORMAL = "truncated_normal"
    GLOROT_UNIFORM = "glorot_uniform"
    GLOROT_NORMAL = "glorot_normal"
    HE_UNIFORM = "he_uniform"
    HE_NORMAL = "he_normal"
    LECUN_UNIFORM = "lecun_uniform"
    LECUN_NORMAL = "lecun_normal"
    ORTHOGONAL = "orthogonal"
    ZEROS = "zeros"
    ONES = "ones"
    CONSTANT = "constant"


class InitializerSpec(_Section):
    """How kernels are initialised; parameters apply to the kinds that take them.

    `mean`/`stddev`: random_normal, truncated_normal. `minval`/`maxval`:
    random_uniform. `gain`: orthogonal. `value`: constant.
    """

    kind: InitializerKind = InitializerKind.RANDOM_NORMAL
    mean: float = Field(0.0, ge=-100.0, le=100.0)
    stddev: float = Field(1.0, gt=0.0, le=100.0)
    minval: float = Field(-0.05, ge=-100.0, le=100.0)
    maxval: float = Field(0.05, ge=-100.0, le=100.0)
    gain: float = Field(1.0, gt=0.0, le=100.0)
    value: float = Field(0.0, ge=-100.0, le=100.0)

    @model_validator(mode="after")
    def _uniform_range(self) -> Self:
        if self.minval >= self.maxval:
            raise SpecLimitError("model.initializer.minval", "must be below maxval")
        return self


Width = Annotated[StrictInt, Field(ge=1, le=Limits.WIDTH)]


MLP_FIELDS = ("hidden_layers", "activation", "initializer", "batch_norm", "residual")


class ModelSpec(_Section):
    """The network: an MLP by its shorthand fields, or a list of Keras layers.

    The shorthand: hidden widths, their activation(s), the kernel initializer,
    batch norm and residual connections. `layers` instead takes the layers of a
    Keras Sequential model as Keras serializes them (core/experiment/layers.py),
    the hidden part of the network; giving both is refused.

    The output layer and the loss follow from the data: one sigmoid unit with
    binary cross-entropy for two classes, softmax with sparse categorical
    cross-entropy otherwise, one linear unit with mean squared error for
    regression. A list's last Dense layer whose units match that output is
    taken as it. Biases start at zero, as in Keras.
    """

    layers: list[LayerSpec] | None = Field(
        None,
        min_length=1,
        max_length=LayerLimits.LAYERS,
        description="Keras layers (`model.to_json()`'s `config.layers`), instead of the MLP fields",
    )

    hidden_layers: list[Width] = Field(
        default_factory=lambda: [5, 5, 5, 5], min_length=1, max_length=Limits.HIDDEN_LAYERS
    )
    activation: Activation | list[Activation] = Activation.SIGMOID
    initializer: InitializerSpec = Field(default_factory=InitializerSpec)
    batch_norm: bool = False
    residual: bool = False

    @model_serializer(mode="wrap")
    # No return type: pydantic then keeps the model's own schema for what it dumps.
    def _one_kind_of_network(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        """Dumped as given: a layer list without the shorthand's defaults, an MLP without
        `layers` (so a dumped spec validates again, and MLP records read as before)."""
        out = handler(self)
        if self.layers is None:
            out.pop("layers", None)
        else:
            for name in MLP_FIELDS:
                out.pop(name, None)
        return out

    @model_validator(mode="after")
    def _layers_or_shorthand(self) -> Self:
        if self.layers is None:
            return self
        given = [name for name in MLP_FIELDS if name in self.model_fields_set]
        if given:
            raise SpecLimitError(
                "model.layers",
                f"give either model.layers or the MLP fields ({', '.join(given)}), not both",
            )
        if layer_count(self.layers) > LayerLimits.LAYERS:
            raise SpecLimitError(
                "model.layers",
                f"{layer_count(self.layers)} layers (residual blocks' included) exceed the "
                f"limit of {LayerLimits.LAYERS}",
            )
        return self

    @model_validator(mode="after")
    def _one_activation_per_layer(self) -> Self:
        if isinstance(self.activation, list) and len(self.activation) != len(self.hidden_layers):
            raise SpecLimitError(
                "model.activation",
                f"a list must name one activation per hidden layer "
                f"({len(self.hidden_layers)}), got {len(self.activation)}",
            )
        return self

    @property
    def activations(self) -> list[Activation]:
        if isinstance(self.activation, list):
            return list(self.activation)
        return [self.activation] * len(self.hidden_layers)


# -------------------------------------------------------------------------- training


class OptimizerKind(StrEnum):
    RMSPROP = "rmsprop"
    SGD = "sgd"
    ADAM = "adam"
    ADAMW = "adamw"
    ADAGRAD = "adagrad"
    ADADELTA = "adadelta"
    ADAMAX = "adamax"
    NADAM = "nadam"


class OptimizerSpec(_Section):
    """The optimizer. `learning_rate` None means that optimizer's Keras default.

    `momentum` applies to sgd and rmsprop, `nesterov` to sgd.
    """

    kind: OptimizerKind = OptimizerKind.RMSPROP
    learning_rate: float | None = Field(None, gt=0.0, le=10.0)
    momentum: float = Field(0.0, ge=0.0, lt=1.0)
    nesterov: bool = False


class GraphKind(StrEnum):
    """Which kind of compiled graph trains a run (core.engine.graph_cache).

    `plain` is TensorFlow's graph, traced in a fraction of a second; `xla` is
    compiled by XLA, a second or two more the first time a process meets a
    network, then several times faster a step; `auto` lets the engine choose
    (XLA once it holds the network compiled, else the plain graph). The same
    spec on the same kind gives the same numbers bit for bit; the two kinds
    agree to float32 rounding. `result.timing.graph` says which one ran.
    """

    AUTO = "auto"
    PLAIN = "plain"
    XLA = "xla"


class TrainingSpec(_Section):
    """How to train. `clipnorm`/`clipvalue` clip each gradient tensor; `graph` pins the
    kind of compiled graph (see `GraphKind`)."""

    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    epochs: StrictInt = Field(100, ge=1, le=Limits.EPOCHS)
    batch_size: StrictInt = Field(32, ge=1, le=Limits.BATCH_SIZE)
    clipnorm: float | None = Field(None, gt=0.0, le=1e6)
    clipvalue: float | None = Field(None, gt=0.0, le=1e6)
    graph: GraphKind = Field(
        GraphKind.AUTO,
        description="auto: the engine chooses; plain or xla: that kind of graph, for "
        "numbers that repeat bit for bit across workers whatever they hold compiled",
    )

    @model_validator(mode="after")
    def _one_clipping(self) -> Self:
        if self.clipnorm is not None and self.clipvalue is not None:
            raise SpecLimitError("training.clipnorm", "set at most one of clipnorm and clipvalue")
        return self


# --------------------------------------------------------------------------- capture


class CaptureEvery(StrEnum):
    EPOCH = "epoch"
    STEP = "step"


class CaptureSpec(_Section):
    """What to record while training.

    `every="epoch"` records one point per epoch (weights at its end, the
    epoch's per-step gradient statistics averaged); `every="step"` records
    every optimizer step. `raw` also exports the tensors themselves
    (`arrays.npz`) for small models.

    The switches leave their numbers out of every part of the result (see
    core/experiment/result.py); training itself is the same, so the loss is too:
    - `weights`: weight statistics and the update ratio (|step| / |weights|,
      made of weights alone), the initial weights, the tutorial's weights,
      weight histograms and raw weights.
    - `gradients`: gradient statistics, the tutorial's gradients, gradient
      histograms and raw gradients; the diagnosis then does not judge
      `vanishing` or `exploding` (it says so under `not_judged`).
    - `activations`: activation statistics on the probe batch, which is then
      not forward-passed at all; the diagnosis does not judge `dead_units` or
      `saturated`.
    - `histograms`: the histogram snapshots of whichever of weights and
      gradients are captured (none when both are off).
    `diverged` is judged from the loss whatever is captured.
    """

    every: CaptureEvery = CaptureEvery.EPOCH
    weights: bool = True
    gradients: bool = True
    activations: bool = True
    histograms: bool = True
    histogram_bins: StrictInt = Field(30, ge=2, le=Limits.HISTOGRAM_BINS)
    histogram_snapshots: StrictInt = Field(5, ge=2, le=Limits.HISTOGRAM_SNAPSHOTS)
    probe_size: StrictInt = Field(256, ge=1, le=Limits.PROBE_SIZE)
    raw: bool = False


class Device(StrEnum):
    CPU = "cpu"
    GPU = "gpu"


# ---------------------------------------------------------------------------- spec


def draw_seed() -> int:
    """A fresh seed for a spec that gave none, recorded so the run can be repeated."""
    return secrets.randbelow(Limits.SEED) + 1


class ExperimentSpec(_Section):
    """One experiment: data, model, training, capture and where to run it."""

    name: str | None = Field(None, max_length=Limits.NAME_LENGTH)
    seed: StrictInt = Field(default_factory=draw_seed, ge=0, le=Limits.SEED)
    dataset: DatasetSpec = Field(default_factory=DatasetSpec)
    model: ModelSpec = Field(default_factory=ModelSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    capture: CaptureSpec = Field(default_factory=CaptureSpec)
    device: Device = Device.CPU

    @field_validator("name")
    @classmethod
    def _printable_name(cls, value: str | None) -> str | None:
        if value is not None and not value.isprintable():
            raise ValueError("name must be printable text")
        return value

    @model_validator(mode="after")
    def _within_limits(self) -> Self:
        check_limits(self)
        return self

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


# ------------------------------------------------------------------- derived sizes

REAL_SHAPES: dict[DatasetKind, tuple[int, int, int]] = {
    # kind: (samples, features, classes), as shipped in scikit-learn
    DatasetKind.DIGITS: (1797, 64, 10),
    DatasetKind.BREAST_CANCER: (569, 30, 2),
    DatasetKind.IRIS: (150, 4, 3),
    DatasetKind.WINE: (178, 13, 3),
}


def sample_shape(dataset: DatasetSpec) -> tuple[int, ...]:
    """One sample's shape as a layer list receives it (the MLP gets it flattened)."""
    kind = dataset.kind
    if kind is DatasetKind.DIGITS:
        return (8, 8, 1)
    if kind is DatasetKind.BARS:
        return (dataset.image_size, dataset.image_size, 1)
    if kind is DatasetKind.ADDING:
        return (dataset.sequence_length, 2)
    if kind is DatasetKind.RECALL:
        return (dataset.sequence_length, dataset.classes + 1)
    if not dataset.generated:
        return (REAL_SHAPES[kind][1],)
    return (2,)


def dataset_shape(dataset: DatasetSpec) -> tuple[int, int, int]:
    """(samples, features, classes) of a dataset spec, known without loading it.

    Features are a sample's values, flattened; a regression set has 0 classes.
    """
    if not dataset.generated:
        return REAL_SHAPES[dataset.kind]
    classes = {
        DatasetKind.BLOBS: dataset.centers,
        DatasetKind.SPIRAL: dataset.classes,
        DatasetKind.GAUSSIAN: dataset.classes,
        DatasetKind.RECALL: dataset.classes,
        DatasetKind.ADDING: 0,
    }.get(dataset.kind, 2)
    return dataset.n_samples, math.prod(sample_shape(dataset)), classes


def output_units(dataset: DatasetSpec) -> int:
    """The output layer's width: 1 for two classes and for regression, else one per class."""
    _, _, classes = dataset_shape(dataset)
    return 1 if classes <= 2 else classes


def split_sizes(dataset: DatasetSpec) -> tuple[int, int]:
    """(train, validation) sample counts."""
    n, _, _ = dataset_shape(dataset)
    n_val = round(n * dataset.validation_split)
    return n - n_val, n_val


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
        isinstance(last, DenseLayer)
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
    output_layer = last if pasted else DenseLayer(class_name="Dense", config={"units": units})
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
    """How many numbers result.json's series, histograms and through-time norms hold for
    `spec` (at most)."""
    capture = spec.capture
    steps = spec.training.epochs * steps_per_epoch(spec)
    points = steps if capture.every is CaptureEvery.STEP else spec.training.epochs
    hidden = len(spec.model.hidden_layers)
    # variables, probed layers, kernels (histograms), through-time norms per point
    variables, probed, kernels, timesteps = 2 * (hidden + 1), hidden, hidden + 1, 0
    shapes = layered_shapes(spec)
    if shapes is not None:
        members = _members(shapes.layers)
        variables = sum(len(weight_parts(layer.class_name)) for layer in members)
        probed = sum(probes_activations(layer) for layer in members)
        kernels = sum("kernel" in weight_parts(layer.class_name) for layer in members)
        timesteps = shapes.timesteps * int(capture.gradients)
    # Per variable: 4 weight statistics and the update ratio, 4 of the gradient.
    per_variable = 5 * int(capture.weights) + 4 * int(capture.gradients)
    per_point = variables * per_variable + 5 * probed * int(capture.activations) + 2 + timesteps
    kinds = int(capture.weights) + int(capture.gradients)
    snapshots = capture.histogram_snapshots if capture.histograms else 0
    histograms = snapshots * kernels * kinds * (2 * capture.histogram_bins + 1)
    return points * per_point + histograms


def _members(shapes: Sequence[LayerShape]) -> list[LayerShape]:
    """The layers of a list, each residual block's members in its place."""
    return [m for shape in shapes for m in (_members(shape.inner) if shape.inner else [shape])]


def check_limits(spec: ExperimentSpec) -> None:
    """Refuse sizes that span fields; each message names the field and the limit."""
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
            f"statistics captured, and the histograms), over the limit of "
            f"{Limits.RESULT_VALUES:,}; capture every epoch, fewer statistics, fewer "
            "epochs or a shallower network",
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
    timesteps = shapes.timesteps
    if timesteps > Limits.STEP_TIMESTEPS:
        raise SpecLimitError(
            "dataset.sequence_length",
            f"the recurrent layers run {timesteps:,} time steps one after another per pass, "
            f"over the limit of {Limits.STEP_TIMESTEPS:,}; use shorter sequences or fewer "
            "recurrent layers",
        )
    work = 3 * shapes.flops * n_train * spec.training.epochs
    if work > Limits.FLOPS:
        raise SpecLimitError(
            "training.epochs",
            f"{spec.training.epochs:,} epochs x {n_train:,} training samples x "
            f"{shapes.flops:,} forward operations x 3 = {work:.3g} float operations exceed "
            f"the limit of {Limits.FLOPS:.3g}; train fewer epochs, on fewer samples or a "
            "smaller network",
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
