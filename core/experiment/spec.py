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

import inspect
import math
import secrets
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    StrictInt,
    create_model,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from core.experiment.layer_configs import LayerLimits, printable_name
from core.experiment.layer_shapes import layer_count
from core.experiment.layers import LayerSpec
from core.experiment.limits import Limits, SpecLimitError


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
    UPLOADED = "uploaded"


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
# Every kind the service holds itself: the generated sets and the real ones.
BUILTIN_KINDS = tuple(kind for kind in DatasetKind if kind is not DatasetKind.UPLOADED)


# An uploaded dataset's id, a ULID (POST /v1/datasets).
DATASET_ID_PATTERN = r"^[0-9A-HJKMNP-TV-Z]{26}$"
# The fields an uploaded dataset takes; every other one is a generated set's.
UPLOADED_FIELDS = frozenset({"kind", "id", "data", "validation_split", "standardize"})


class UploadedData(_Section):
    """What the service read from an uploaded dataset: filled into a spec from the store
    when the spec is submitted (a value a client sends is replaced)."""

    name: str = Field(max_length=Limits.NAME_LENGTH)
    samples: int = Field(ge=4, le=Limits.SAMPLES)
    sample_shape: list[Annotated[int, Field(ge=1)]] = Field(min_length=1, max_length=3)
    classes: int = Field(ge=0, le=Limits.CLASSES, description="0 for a regression")


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

    `uploaded` is a dataset a client sent (POST /v1/datasets), named by `id`; it
    takes `validation_split` and `standardize` (on unless turned off, as for the
    real sets) and nothing a generated set takes. Its shape and classes (`data`)
    come from the store: until the service fills them in, only the fields are
    checked, and every limit once they are.
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
    id: str | None = Field(
        None, pattern=DATASET_ID_PATTERN, description="uploaded: the dataset's id"
    )
    data: UploadedData | None = Field(
        None, description="uploaded: its shape and classes, filled in by the service"
    )
    # The arrays a worker read from the store for an uploaded dataset; never serialized.
    _provided: tuple[Any, Any] | None = PrivateAttr(None)

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """Published as what validates: a union keyed on `kind` of `UploadedDatasetSpec` and
        `BuiltinDatasetSpec`, not one flat object offering `n_samples` to an uploaded
        dataset and `id` to circles. The validator and serializer below keep the rules."""
        published = handler(
            core_schema.tagged_union_schema(
                {
                    DatasetKind.UPLOADED.value: UploadedDatasetSpec.__pydantic_core_schema__,
                    **{
                        kind.value: BuiltinDatasetSpec.__pydantic_core_schema__
                        for kind in BUILTIN_KINDS
                    },
                },
                discriminator="kind",
            )
        )
        description = inspect.cleandoc(cls.__doc__ or "")
        return {**published, "title": cls.__name__, "description": description}

    @model_serializer(mode="wrap")
    # No return type: pydantic then keeps the model's own schema for what it dumps.
    def _fields_of_its_kind_only(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        """Dumped as it validates again: an uploaded dataset with its own fields alone, a
        generated or real one without `id` and `data` (so its records read as before)."""
        out = handler(self)
        if self.kind is DatasetKind.UPLOADED:
            return {name: value for name, value in out.items() if name in UPLOADED_FIELDS}
        out.pop("id", None)
        out.pop("data", None)
        return out

    @model_validator(mode="after")
    def _fields_of_its_kind(self) -> Self:
        if self.kind is DatasetKind.UPLOADED:
            if self.id is None:
                raise SpecLimitError("dataset.id", "an uploaded dataset is named by its id")
            generated_only = sorted(self.model_fields_set - UPLOADED_FIELDS)
            if generated_only:
                name = generated_only[0]
                raise SpecLimitError(
                    f"dataset.{name}", f"only generated sets take {name}, not an uploaded one"
                )
        elif self.model_fields_set & {"id", "data"}:
            name = min(self.model_fields_set & {"id", "data"})
            raise SpecLimitError(f"dataset.{name}", "only an uploaded dataset takes it")
        return self

    @property
    def uploaded(self) -> UploadedData:
        """An uploaded dataset's shape and classes; raises until the service filled them."""
        if self.data is None:
            raise SpecLimitError("dataset.id", f"dataset {self.id} was not looked up")
        return self.data

    def provide(self, x: Any, y: Any) -> None:
        """Hand an uploaded dataset's arrays (as the store keeps them) to the loader."""
        self._provided = (x, y)

    @property
    def provided(self) -> tuple[Any, Any] | None:
        return self._provided

    @property
    def generated(self) -> bool:
        return self.kind in GENERATED_KINDS

    @property
    def standardized(self) -> bool:
        return (not self.generated) if self.standardize is None else self.standardize

    @property
    def regression(self) -> bool:
        if self.kind is DatasetKind.UPLOADED:
            return self.data is not None and self.data.classes == 0
        return self.kind in REGRESSION_KINDS


def _dataset_variant(name: str, doc: str, **fields: Any) -> type[BaseModel]:
    """One member of the dataset section's published union: `fields` (name -> the
    annotation and field, or None for DatasetSpec's own) and nothing else."""
    own = DatasetSpec.model_fields
    definitions: dict[str, Any] = {
        field: spec or (own[field].annotation, own[field]) for field, spec in fields.items()
    }
    return create_model(name, __base__=_Section, __module__=__name__, __doc__=doc, **definitions)


# The members of the dataset section's published union (DatasetSpec.__get_pydantic_json_schema__).
# They only publish, DatasetSpec validates: their fields are DatasetSpec's own, so a limit
# changed there is published changed.
UploadedDatasetSpec = _dataset_variant(
    "UploadedDatasetSpec",
    "A dataset a client sent (POST /v1/datasets), named by its id.",
    kind=(Literal[DatasetKind.UPLOADED.value], ...),
    id=(str, Field(pattern=DATASET_ID_PATTERN, description="the dataset's id")),
    validation_split=None,
    standardize=None,
    data=(
        UploadedData | None,
        Field(
            None,
            description="its shape and classes, filled in by the service",
            json_schema_extra={"readOnly": True},
        ),
    ),
)
BuiltinDatasetSpec = _dataset_variant(
    "BuiltinDatasetSpec",
    "A generated set, or a real one shipped with scikit-learn; `{}` is circles.",
    kind=(
        Literal[tuple(kind.value for kind in BUILTIN_KINDS)],
        DatasetKind.CIRCLES.value,
    ),
    **{field: None for field in DatasetSpec.model_fields if field not in ("kind", "id", "data")},
)


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
    if kind is DatasetKind.UPLOADED:
        return tuple(dataset.uploaded.sample_shape)
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
    if dataset.kind is DatasetKind.UPLOADED:
        data = dataset.uploaded
        return data.samples, math.prod(data.sample_shape), data.classes
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
    network, then faster a step for an MLP and for a SimpleRNN or GRU over 100
    time steps or more (slower, or no reliably faster, for the convolutional and
    LSTM networks measured); `auto` lets the engine choose by the network's
    kind: for those it is faster for, XLA once the process holds the network
    compiled, else the plain graph; for the others the plain graph. The same
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
        return printable_name(value)

    @model_validator(mode="after")
    def _within_limits(self) -> Self:
        # Here, not at the top: core.experiment.sizing reads this module's classes.
        from core.experiment.sizing import check_limits

        check_limits(self)
        return self

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
