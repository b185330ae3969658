"""A network as a list of layers, in the format Keras writes for a Sequential model.

`model.layers` takes what `keras.Sequential(...).to_json()` (or each layer's
`get_config()`) writes for its layers, so a user can paste their own model's
layers: `[{"class_name": "Conv2D", "config": {"filters": 8, "kernel_size": 3}}, ...]`.
Keras (3.14-3.15) writes more than the essentials, and all of it is accepted
at its neutral value: the wrapper keys (`module`, `registered_name`,
`build_config`) are ignored; in each config `name`, `trainable: true`, the
float32 dtype policy, serialized initializers from the allowed set
(`INITIALIZER_CLASSES`), null regularizers and constraints, a null `seed`,
`unroll: false`, `stateful: false`, tuples as lists. A leading `InputLayer` is
checked against the data's shape. Any other key, or another value of one of
these (a regularizer, a constraint, `stateful: true`, a seed: seeds come from
the spec's own), is refused naming its path (`model.layers[3].config.units`).

Nothing here is ever handed to Keras to deserialize: core/engine/layered.py
builds the network from these validated models.

Shapes are known here without TensorFlow: `infer_shapes` walks the list from
the data's shape, refusing a layer that cannot take its input, and counts each
layer's parameters and floating-point operations, which bound a job
(core/experiment/spec.py `check_limits`).

Example:
    >>> layers = LAYER_LIST.validate_python([{"class_name": "LSTM", "config": {"units": 8}}])
    >>> infer_shapes(layers, (50, 2))[-1].output_shape
    (8,)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    GetJsonSchemaHandler,
    StrictInt,
    Tag,
    TypeAdapter,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema


class LayerLimits:
    """Bounds on one layer's sizes; a network's total work is bounded in spec.Limits."""

    LAYERS = 64  # in the list, counting those inside residual blocks
    UNITS = 512  # dense and recurrent units
    FILTERS = 256
    KERNEL = 16  # a convolution's or pool's extent along an axis
    STRIDE = 16
    DILATION = 16
    NAME_LENGTH = 200


class ShapeError(ValueError):
    """A layer that cannot take the shape it is given; `path` names it in the spec."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


# ------------------------------------------------------------------ shared pieces


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KerasActivation(StrEnum):
    """Activations by their Keras names (core.experiment.spec.Activation, plus softmax
    for a pasted output layer)."""

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
    SOFTMAX = "softmax"


class DTypePolicyConfig(_Strict):
    name: Literal["float32"] = "float32"


class DTypePolicy(_Strict):
    """Keras' serialized float32 dtype policy; the only one accepted."""

    module: Literal["keras"] | None = None
    class_name: Literal["DTypePolicy"] = "DTypePolicy"
    config: DTypePolicyConfig = Field(default_factory=DTypePolicyConfig)
    registered_name: None = None


# Keras initializer classes accepted, by the name core.experiment.spec.InitializerKind uses.
INITIALIZER_CLASSES: dict[str, str] = {
    "RandomNormal": "random_normal",
    "RandomUniform": "random_uniform",
    "TruncatedNormal": "truncated_normal",
    "GlorotUniform": "glorot_uniform",
    "GlorotNormal": "glorot_normal",
    "HeUniform": "he_uniform",
    "HeNormal": "he_normal",
    "LecunUniform": "lecun_uniform",
    "LecunNormal": "lecun_normal",
    "Orthogonal": "orthogonal",
    "Zeros": "zeros",
    "Ones": "ones",
    "Constant": "constant",
}
InitializerClass = Literal[
    "RandomNormal",
    "RandomUniform",
    "TruncatedNormal",
    "GlorotUniform",
    "GlorotNormal",
    "HeUniform",
    "HeNormal",
    "LecunUniform",
    "LecunNormal",
    "Orthogonal",
    "Zeros",
    "Ones",
    "Constant",
]
InitializerName = Literal[
    "random_normal",
    "random_uniform",
    "truncated_normal",
    "glorot_uniform",
    "glorot_normal",
    "he_uniform",
    "he_normal",
    "lecun_uniform",
    "lecun_normal",
    "orthogonal",
    "zeros",
    "ones",
    "constant",
]
# Each class's parameters, with Keras' defaults.
_INITIALIZER_PARAMETERS: dict[str, dict[str, float]] = {
    "RandomNormal": {"mean": 0.0, "stddev": 0.05},
    "TruncatedNormal": {"mean": 0.0, "stddev": 0.05},
    "RandomUniform": {"minval": -0.05, "maxval": 0.05},
    "Orthogonal": {"gain": 1.0},
    "Constant": {"value": 0.0},
}


class InitializerConfig(_Strict):
    """The parameters of a serialized initializer; each class takes its own."""

    seed: None = Field(None, description="seeds come from the spec's `seed`")
    mean: float | None = Field(None, ge=-100.0, le=100.0)
    stddev: float | None = Field(None, gt=0.0, le=100.0)
    minval: float | None = Field(None, ge=-100.0, le=100.0)
    maxval: float | None = Field(None, ge=-100.0, le=100.0)
    gain: float | None = Field(None, gt=0.0, le=100.0)
    value: float | None = Field(None, ge=-100.0, le=100.0)
    input_axes: None = None
    output_axes: None = None


class SerializedInitializer(_Strict):
    """An initializer as Keras serializes it, from the allowed classes."""

    module: Literal["keras.initializers"] | None = None
    class_name: InitializerClass
    config: InitializerConfig = Field(default_factory=InitializerConfig)
    registered_name: None = None

    @model_validator(mode="after")
    def _parameters_of_its_class(self) -> Self:
        allowed = _INITIALIZER_PARAMETERS.get(self.class_name, {})
        for key in ("mean", "stddev", "minval", "maxval", "gain", "value"):
            if getattr(self.config, key) is not None and key not in allowed:
                raise ValueError(f"config.{key}: {self.class_name} takes no {key}")
        low, high = self.parameters().get("minval"), self.parameters().get("maxval")
        if low is not None and high is not None and low >= high:
            raise ValueError("config.minval: must be below maxval")
        return self

    def parameters(self) -> dict[str, float]:
        """Its class's parameters, Keras' defaults where the config leaves one out."""
        defaults = _INITIALIZER_PARAMETERS.get(self.class_name, {})
        return {
            key: value if (given := getattr(self.config, key)) is None else given
            for key, value in defaults.items()
        }


Initializer = InitializerName | SerializedInitializer


@dataclass(frozen=True)
class InitializerChoice:
    """An initializer resolved: its kind (spec.InitializerKind's value) and parameters."""

    kind: str
    parameters: tuple[tuple[str, float], ...] = ()


def resolve_initializer(value: Initializer) -> InitializerChoice:
    """The kind and parameters of a string or serialized initializer, Keras' defaults filled."""
    if isinstance(value, str):
        class_name = next(c for c, kind in INITIALIZER_CLASSES.items() if kind == value)
        value = SerializedInitializer(class_name=class_name)
    return InitializerChoice(
        INITIALIZER_CLASSES[value.class_name], tuple(sorted(value.parameters().items()))
    )


class _LayerConfig(_Strict):
    """What every Keras layer config carries; accepted at its neutral value."""

    name: str | None = Field(None, max_length=LayerLimits.NAME_LENGTH)
    trainable: Literal[True] = True
    dtype: DTypePolicy | Literal["float32"] | None = None

    @field_validator("name")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        if value is not None and not value.isprintable():
            raise ValueError("name must be printable text")
        return value


class _Weighted(_LayerConfig):
    """Kernel and bias settings shared by dense, convolutional and recurrent layers."""

    use_bias: Literal[True] = True
    kernel_initializer: Initializer = "glorot_uniform"
    bias_initializer: Initializer = "zeros"
    kernel_regularizer: None = None
    bias_regularizer: None = None
    activity_regularizer: None = None
    kernel_constraint: None = None
    bias_constraint: None = None


Shape = tuple[int, ...]
Extent = Annotated[StrictInt, Field(ge=1, le=LayerLimits.KERNEL)]
Stride = Annotated[StrictInt, Field(ge=1, le=LayerLimits.STRIDE)]
Dilation = Annotated[StrictInt, Field(ge=1, le=LayerLimits.DILATION)]


def _axes(value: int | list[int], rank: int) -> tuple[int, ...]:
    return (value,) * rank if isinstance(value, int) else tuple(value)


def _tuple_length(value: int | list[int] | None, rank: int, what: str) -> None:
    if isinstance(value, list) and len(value) != rank:
        raise ValueError(f"{what} takes {rank} value(s) or one integer, got {len(value)}")


def _sliding(size: int, extent: int, stride: int, dilation: int, padding: str) -> int:
    """Output length of a convolution or pool along one axis, as Keras computes it."""
    if padding in ("same", "causal"):
        return -(-size // stride)
    span = dilation * (extent - 1) + 1
    return (size - span) // stride + 1 if size >= span else 0


# ------------------------------------------------------------------------- configs


class DenseConfig(_Weighted):
    units: StrictInt = Field(ge=1, le=LayerLimits.UNITS)
    activation: KerasActivation = KerasActivation.LINEAR
    quantization_config: None = None
    lora_rank: None = None


class _ConvConfig(_Weighted):
    filters: StrictInt = Field(ge=1, le=LayerLimits.FILTERS)
    kernel_size: Extent | list[Extent]
    strides: Stride | list[Stride] = 1
    padding: Literal["valid", "same"] = "valid"
    data_format: Literal["channels_last"] | None = "channels_last"
    dilation_rate: Dilation | list[Dilation] = 1
    groups: Literal[1] = 1
    activation: KerasActivation = KerasActivation.LINEAR

    RANK: ClassVar[int] = 1

    @model_validator(mode="after")
    def _one_value_per_axis(self) -> Self:
        for key in ("kernel_size", "strides", "dilation_rate"):
            _tuple_length(getattr(self, key), self.RANK, key)
        strided = any(s > 1 for s in _axes(self.strides, self.RANK))
        if strided and any(d > 1 for d in _axes(self.dilation_rate, self.RANK)):
            raise ValueError("strides: dilation_rate > 1 needs strides of 1 (as in Keras)")
        return self


class Conv1DConfig(_ConvConfig):
    # "causal" pads the start only, so step t sees steps up to t: for sequences.
    padding: Literal["valid", "same", "causal"] = "valid"  # type: ignore[assignment]


class Conv2DConfig(_ConvConfig):
    RANK: ClassVar[int] = 2


class _PoolConfig(_LayerConfig):
    pool_size: Extent | list[Extent] = 2
    strides: Stride | list[Stride] | None = None
    padding: Literal["valid", "same"] = "valid"
    data_format: Literal["channels_last"] | None = "channels_last"

    RANK: ClassVar[int] = 1

    @model_validator(mode="after")
    def _one_value_per_axis(self) -> Self:
        for key in ("pool_size", "strides"):
            _tuple_length(getattr(self, key), self.RANK, key)
        return self

    def stride_axes(self) -> tuple[int, ...]:
        """Keras' strides: the pool size when none is given."""
        return _axes(self.pool_size if self.strides is None else self.strides, self.RANK)


class Pool1DConfig(_PoolConfig):
    pass


class Pool2DConfig(_PoolConfig):
    RANK: ClassVar[int] = 2


class GlobalPoolConfig(_LayerConfig):
    data_format: Literal["channels_last"] | None = "channels_last"
    keepdims: bool = False


class FlattenConfig(_LayerConfig):
    data_format: Literal["channels_last"] | None = "channels_last"


class ReshapeConfig(_LayerConfig):
    target_shape: list[Annotated[StrictInt, Field(ge=-1, le=1_000_000)]] = Field(
        min_length=1, max_length=4
    )

    @field_validator("target_shape")
    @classmethod
    def _sizes(cls, value: list[int]) -> list[int]:
        if 0 in value or value.count(-1) > 1:
            raise ValueError("sizes are positive, with at most one -1 (inferred)")
        return value


class _RecurrentConfig(_Weighted):
    units: StrictInt = Field(ge=1, le=LayerLimits.UNITS)
    activation: KerasActivation = KerasActivation.TANH
    recurrent_initializer: Initializer = "orthogonal"
    recurrent_regularizer: None = None
    recurrent_constraint: None = None
    return_sequences: bool = False
    return_state: Literal[False] = False
    go_backwards: Literal[False] = False
    stateful: Literal[False] = False
    unroll: Literal[False] = False
    zero_output_for_mask: Literal[False] = False
    dropout: float = Field(0.0, ge=0.0, le=0.0, description="only 0: no dropout inside cells")
    recurrent_dropout: float = Field(0.0, ge=0.0, le=0.0, description="only 0")
    seed: None = None

    GATES: ClassVar[int] = 1


class SimpleRNNConfig(_RecurrentConfig):
    pass


class LSTMConfig(_RecurrentConfig):
    recurrent_activation: KerasActivation = KerasActivation.SIGMOID
    unit_forget_bias: bool = True
    GATES: ClassVar[int] = 4


class GRUConfig(_RecurrentConfig):
    recurrent_activation: KerasActivation = KerasActivation.SIGMOID
    # Keras' default (and cuDNN's) formulation: the reset gate after the recurrent product.
    reset_after: Literal[True] = True
    GATES: ClassVar[int] = 3


class BatchNormalizationConfig(_LayerConfig):
    axis: Literal[-1] | list[Literal[-1]] = -1
    momentum: float = Field(0.99, ge=0.0, lt=1.0)
    epsilon: float = Field(1e-3, gt=0.0, le=1.0)
    center: Literal[True] = True
    scale: Literal[True] = True
    beta_initializer: Initializer = "zeros"
    gamma_initializer: Initializer = "ones"
    moving_mean_initializer: Literal["zeros"] | SerializedInitializer = "zeros"
    moving_variance_initializer: Literal["ones"] | SerializedInitializer = "ones"
    beta_regularizer: None = None
    gamma_regularizer: None = None
    beta_constraint: None = None
    gamma_constraint: None = None
    synchronized: Literal[False] = False
    renorm: Literal[False] = False
    renorm_clipping: None = None
    renorm_momentum: float = Field(0.99, ge=0.0, le=1.0, description="unused without renorm")

    @model_validator(mode="after")
    def _moving_statistics_start_neutral(self) -> Self:
        for key, start in (
            ("moving_mean_initializer", "zeros"),
            ("moving_variance_initializer", "ones"),
        ):
            value = getattr(self, key)
            if not isinstance(value, str) and resolve_initializer(value).kind != start:
                raise ValueError(f"{key}: the moving statistics start at {start}")
        return self


class LayerNormalizationConfig(_LayerConfig):
    axis: Literal[-1] | list[Literal[-1]] = -1
    epsilon: float = Field(1e-3, gt=0.0, le=1.0)
    center: Literal[True] = True
    scale: Literal[True] = True
    rms_scaling: Literal[False] = False
    beta_initializer: Initializer = "zeros"
    gamma_initializer: Initializer = "ones"
    beta_regularizer: None = None
    gamma_regularizer: None = None
    beta_constraint: None = None
    gamma_constraint: None = None


class DropoutConfig(_LayerConfig):
    rate: float = Field(ge=0.0, lt=1.0)
    seed: None = None
    noise_shape: None = None


class ActivationConfig(_LayerConfig):
    activation: KerasActivation


class InputLayerConfig(_Strict):
    batch_shape: list[Annotated[StrictInt, Field(ge=1, le=1_000_000)] | None] | None = Field(
        None, max_length=5
    )
    shape: list[Annotated[StrictInt, Field(ge=1, le=1_000_000)]] | None = Field(None, max_length=4)
    dtype: Literal["float32"] | DTypePolicy | None = None
    sparse: Literal[False] = False
    ragged: Literal[False] = False
    name: str | None = Field(None, max_length=LayerLimits.NAME_LENGTH)
    optional: Literal[False] = False

    def sample_shape(self) -> Shape | None:
        """The shape of one sample (no batch axis), None where it says none."""
        if self.batch_shape is not None:
            dims = self.batch_shape[1:]
            return None if None in dims else tuple(int(d) for d in dims if d is not None)
        return None if self.shape is None else tuple(self.shape)


class ResidualConfig(_Strict):
    """gradwatch's own: `x + block(x)`, for a block whose output has its input's shape."""

    layers: list[LayerSpec] = Field(min_length=1, max_length=LayerLimits.LAYERS)
    name: str | None = Field(None, max_length=LayerLimits.NAME_LENGTH)


# -------------------------------------------------------------------------- layers


class _Layer(_Strict):
    """The wrapper Keras writes around a layer's config; `module`, `registered_name` and
    `build_config` are accepted and ignored."""

    module: str | None = Field(None, max_length=100)
    registered_name: str | None = Field(None, max_length=200)
    build_config: dict[str, Any] | None = None


class DenseLayer(_Layer):
    class_name: Literal["Dense"]
    config: DenseConfig


class Conv1DLayer(_Layer):
    class_name: Literal["Conv1D"]
    config: Conv1DConfig


class Conv2DLayer(_Layer):
    class_name: Literal["Conv2D"]
    config: Conv2DConfig


class MaxPooling1DLayer(_Layer):
    class_name: Literal["MaxPooling1D"]
    config: Pool1DConfig = Field(default_factory=Pool1DConfig)


class MaxPooling2DLayer(_Layer):
    class_name: Literal["MaxPooling2D"]
    config: Pool2DConfig = Field(default_factory=Pool2DConfig)


class AveragePooling1DLayer(_Layer):
    class_name: Literal["AveragePooling1D"]
    config: Pool1DConfig = Field(default_factory=Pool1DConfig)


class AveragePooling2DLayer(_Layer):
    class_name: Literal["AveragePooling2D"]
    config: Pool2DConfig = Field(default_factory=Pool2DConfig)


class GlobalAveragePooling1DLayer(_Layer):
    class_name: Literal["GlobalAveragePooling1D"]
    config: GlobalPoolConfig = Field(default_factory=GlobalPoolConfig)


class GlobalAveragePooling2DLayer(_Layer):
    class_name: Literal["GlobalAveragePooling2D"]
    config: GlobalPoolConfig = Field(default_factory=GlobalPoolConfig)


class FlattenLayer(_Layer):
    class_name: Literal["Flatten"]
    config: FlattenConfig = Field(default_factory=FlattenConfig)


class ReshapeLayer(_Layer):
    class_name: Literal["Reshape"]
    config: ReshapeConfig


class SimpleRNNLayer(_Layer):
    class_name: Literal["SimpleRNN"]
    config: SimpleRNNConfig


class LSTMLayer(_Layer):
    class_name: Literal["LSTM"]
    config: LSTMConfig


class GRULayer(_Layer):
    class_name: Literal["GRU"]
    config: GRUConfig


class BatchNormalizationLayer(_Layer):
    class_name: Literal["BatchNormalization"]
    config: BatchNormalizationConfig = Field(default_factory=BatchNormalizationConfig)


class LayerNormalizationLayer(_Layer):
    class_name: Literal["LayerNormalization"]
    config: LayerNormalizationConfig = Field(default_factory=LayerNormalizationConfig)


class DropoutLayer(_Layer):
    class_name: Literal["Dropout"]
    config: DropoutConfig


class ActivationLayer(_Layer):
    class_name: Literal["Activation"]
    config: ActivationConfig


class InputLayerLayer(_Layer):
    class_name: Literal["InputLayer"]
    config: InputLayerConfig = Field(default_factory=InputLayerConfig)


class ResidualLayer(_Layer):
    class_name: Literal["Residual"]
    config: ResidualConfig


_LAYER_CLASSES: tuple[type[_Layer], ...] = (
    DenseLayer,
    Conv1DLayer,
    Conv2DLayer,
    MaxPooling1DLayer,
    MaxPooling2DLayer,
    AveragePooling1DLayer,
    AveragePooling2DLayer,
    GlobalAveragePooling1DLayer,
    GlobalAveragePooling2DLayer,
    FlattenLayer,
    ReshapeLayer,
    SimpleRNNLayer,
    LSTMLayer,
    GRULayer,
    BatchNormalizationLayer,
    LayerNormalizationLayer,
    DropoutLayer,
    ActivationLayer,
    InputLayerLayer,
    ResidualLayer,
)
LAYER_CLASS_NAMES = tuple(
    str(cls.model_fields["class_name"].annotation.__args__[0])  # type: ignore[union-attr]
    for cls in _LAYER_CLASSES
)
RECURRENT_CLASSES = frozenset({"SimpleRNN", "LSTM", "GRU"})


def _class_name(value: Any) -> str | None:
    """The union's tag; a tag of a shape no field has, so error paths skip it
    (`model.layers[3].config.units`, not `...[3].Dense.config.units`)."""
    name = (
        value.get("class_name") if isinstance(value, dict) else getattr(value, "class_name", None)
    )
    return f"<{name}>" if isinstance(name, str) and name in LAYER_CLASS_NAMES else None


class _KeyedOnClassName:
    """Adds OpenAPI's `discriminator` (class_name, and the member each value picks)
    to the union's schema: pydantic writes a plain `oneOf` for a callable discriminator."""

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        members = schema.get("oneOf", [])
        if len(members) == len(LAYER_CLASS_NAMES) and all("$ref" in m for m in members):
            schema["discriminator"] = {
                "propertyName": "class_name",
                "mapping": {
                    name: member["$ref"]
                    for name, member in zip(LAYER_CLASS_NAMES, members, strict=True)
                },
            }
        return schema


LayerSpec = Annotated[
    Annotated[DenseLayer, Tag("<Dense>")]
    | Annotated[Conv1DLayer, Tag("<Conv1D>")]
    | Annotated[Conv2DLayer, Tag("<Conv2D>")]
    | Annotated[MaxPooling1DLayer, Tag("<MaxPooling1D>")]
    | Annotated[MaxPooling2DLayer, Tag("<MaxPooling2D>")]
    | Annotated[AveragePooling1DLayer, Tag("<AveragePooling1D>")]
    | Annotated[AveragePooling2DLayer, Tag("<AveragePooling2D>")]
    | Annotated[GlobalAveragePooling1DLayer, Tag("<GlobalAveragePooling1D>")]
    | Annotated[GlobalAveragePooling2DLayer, Tag("<GlobalAveragePooling2D>")]
    | Annotated[FlattenLayer, Tag("<Flatten>")]
    | Annotated[ReshapeLayer, Tag("<Reshape>")]
    | Annotated[SimpleRNNLayer, Tag("<SimpleRNN>")]
    | Annotated[LSTMLayer, Tag("<LSTM>")]
    | Annotated[GRULayer, Tag("<GRU>")]
    | Annotated[BatchNormalizationLayer, Tag("<BatchNormalization>")]
    | Annotated[LayerNormalizationLayer, Tag("<LayerNormalization>")]
    | Annotated[DropoutLayer, Tag("<Dropout>")]
    | Annotated[ActivationLayer, Tag("<Activation>")]
    | Annotated[InputLayerLayer, Tag("<InputLayer>")]
    | Annotated[ResidualLayer, Tag("<Residual>")],
    Discriminator(
        _class_name,
        custom_error_type="layer_class",
        custom_error_message=(
            "class_name must be one of " + ", ".join(LAYER_CLASS_NAMES) + " (custom objects, "
            "Lambda and other classes are not accepted)"
        ),
        custom_error_context={"allowed": ", ".join(LAYER_CLASS_NAMES)},
    ),
    _KeyedOnClassName(),
]
ResidualConfig.model_rebuild()
LAYER_LIST: TypeAdapter[list[LayerSpec]] = TypeAdapter(list[LayerSpec])


# ---------------------------------------------------------------- shape inference


@dataclass(frozen=True)
class LayerShape:
    """One layer of a list as the data flows through it.

    `path` names it in the spec (`model.layers[2]`, `model.layers[2].config.layers[0]`),
    `name` in results (`conv2d_3`, `residual_2.conv2d_1`); `parameters` counts its
    weights as Keras does (batch norm's moving statistics included), `flops` the
    floating-point operations of its forward pass on one sample.
    """

    layer: LayerSpec
    path: str
    name: str
    input_shape: Shape
    output_shape: Shape
    parameters: int
    flops: int
    # For the layers of a residual block, its members' shapes (in order).
    inner: tuple[LayerShape, ...] = ()

    @property
    def class_name(self) -> str:
        return self.layer.class_name

    @property
    def timesteps(self) -> int:
        """Time steps a recurrent layer runs (0 for others)."""
        return self.input_shape[0] if self.class_name in RECURRENT_CLASSES else 0


def snake_name(class_name: str) -> str:
    """Keras' own lower-case layer names: `Conv2D` -> `conv2d`, `SimpleRNN` -> `simple_rnn`."""
    special = {"SimpleRNN": "simple_rnn", "LSTM": "lstm", "GRU": "gru"}
    if class_name in special:
        return special[class_name]
    out = ""
    for i, char in enumerate(class_name):
        if char.isupper() and i and class_name[i - 1].islower():
            out += "_"
        out += char.lower()
    return out


def layer_count(layers: Sequence[LayerSpec]) -> int:
    """Layers in a list, those inside residual blocks included."""
    return sum(
        1 + (layer_count(layer.config.layers) if isinstance(layer, ResidualLayer) else 0)
        for layer in layers
    )


def infer_shapes(
    layers: Sequence[LayerSpec], input_shape: Shape, *, path: str = "model.layers", prefix: str = ""
) -> list[LayerShape]:
    """Each layer's shapes, parameters and work, from the data's `input_shape` on.

    A leading `InputLayer` is checked against `input_shape` and left out.
    Raises `ShapeError` naming the first layer that cannot take its input.
    """
    out: list[LayerShape] = []
    shape = input_shape
    # Names count from the first layer after a leading InputLayer, so a list
    # names its layers the same with or without one.
    skip = int(bool(layers) and isinstance(layers[0], InputLayerLayer))
    for index, layer in enumerate(layers):
        where = f"{path}[{index}]"
        if isinstance(layer, InputLayerLayer):
            if index > 0 or prefix:
                raise ShapeError(where, "an InputLayer may only come first")
            given = layer.config.sample_shape()
            if given is not None and given != shape:
                raise ShapeError(
                    f"{where}.config.batch_shape",
                    f"the data gives samples of shape {list(shape)}, not {list(given)}",
                )
            continue
        name = f"{prefix}{snake_name(layer.class_name)}_{index + 1 - skip}"
        if isinstance(layer, ResidualLayer):
            inner = infer_shapes(
                layer.config.layers, shape, path=f"{where}.config.layers", prefix=f"{name}."
            )
            end = inner[-1].output_shape if inner else shape
            if end != shape:
                raise ShapeError(
                    where,
                    f"a residual block must give its input's shape {list(shape)}; "
                    f"this one gives {list(end)}",
                )
            out.append(
                LayerShape(
                    layer,
                    where,
                    name,
                    shape,
                    shape,
                    sum(i.parameters for i in inner),
                    sum(i.flops for i in inner) + math.prod(shape),
                    tuple(inner),
                )
            )
            continue
        try:
            result, parameters, flops = _infer(layer, shape)
        except ValueError as error:
            raise ShapeError(where, str(error)) from None
        if not result or 0 in result:
            raise ShapeError(where, f"leaves nothing of an input of shape {list(shape)}")
        out.append(LayerShape(layer, where, name, shape, result, parameters, flops))
        shape = result
    return out


def _need_rank(shape: Shape, rank: int, what: str) -> None:
    if len(shape) != rank:
        dims = {1: "(features)", 2: "(steps, channels)", 3: "(height, width, channels)"}[rank]
        raise ValueError(f"{what} takes samples of shape {dims}; it gets {list(shape)}")


def _infer(layer: Any, shape: Shape) -> tuple[Shape, int, int]:
    """(output shape, parameters, forward flops per sample) of one layer."""
    config = layer.config
    name = layer.class_name
    size = math.prod(shape)
    if isinstance(config, DenseConfig):
        fan_in = shape[-1]
        out = (*shape[:-1], config.units)
        return out, (fan_in + 1) * config.units, 2 * fan_in * math.prod(out)
    if isinstance(config, _ConvConfig):
        rank = config.RANK
        _need_rank(shape, rank + 1, name)
        kernel = _axes(config.kernel_size, rank)
        strides = _axes(config.strides, rank)
        dilation = _axes(config.dilation_rate, rank)
        spatial = tuple(
            _sliding(n, k, s, d, config.padding)
            for n, k, s, d in zip(shape[:-1], kernel, strides, dilation, strict=True)
        )
        out = (*spatial, config.filters)
        taps = math.prod(kernel) * shape[-1]
        return out, (taps + 1) * config.filters, 2 * taps * math.prod(out)
    if isinstance(config, _PoolConfig):
        rank = config.RANK
        _need_rank(shape, rank + 1, name)
        pool = _axes(config.pool_size, rank)
        spatial = tuple(
            _sliding(n, k, s, 1, config.padding)
            for n, k, s in zip(shape[:-1], pool, config.stride_axes(), strict=True)
        )
        out = (*spatial, shape[-1])
        return out, 0, math.prod(pool) * math.prod(out)
    if isinstance(config, GlobalPoolConfig):
        _need_rank(shape, 3 if name.endswith("2D") else 2, name)
        kept = (1,) * (len(shape) - 1) if config.keepdims else ()
        return (*kept, shape[-1]), 0, size
    if isinstance(config, FlattenConfig):
        return (size,), 0, 0
    if isinstance(config, ReshapeConfig):
        target = list(config.target_shape)
        known = math.prod(d for d in target if d != -1)
        if -1 in target:
            if size % known:
                raise ValueError(f"cannot reshape {list(shape)} ({size} values) to {target}")
            target[target.index(-1)] = size // known
        if math.prod(target) != size:
            raise ValueError(f"cannot reshape {list(shape)} ({size} values) to {target}")
        return tuple(target), 0, 0
    if isinstance(config, _RecurrentConfig):
        _need_rank(shape, 2, name)
        steps, fan_in = shape
        units, gates = config.units, config.GATES
        biases = 2 if isinstance(config, GRUConfig) else 1
        parameters = gates * units * (fan_in + units + biases)
        # the products with both kernels, and a few element-wise ops per gate
        flops = steps * (2 * gates * units * (fan_in + units) + 8 * gates * units)
        out = (steps, units) if config.return_sequences else (units,)
        return out, parameters, flops
    if isinstance(config, BatchNormalizationConfig):
        return shape, 4 * shape[-1], 4 * size
    if isinstance(config, LayerNormalizationConfig):
        return shape, 2 * shape[-1], 8 * size
    if isinstance(config, DropoutConfig | ActivationConfig):
        return shape, 0, 4 * size
    raise ValueError(f"{name} is not a layer gradwatch builds")  # pragma: no cover


def weighted_layers(shapes: Sequence[LayerShape]) -> list[LayerShape]:
    """The layers with weights, in order, residual blocks' members in their place."""
    out: list[LayerShape] = []
    for shape in shapes:
        if shape.inner:
            out += weighted_layers(shape.inner)
        elif shape.parameters:
            out.append(shape)
    return out


_KERNEL_AND_BIAS = ("kernel", "bias")
_WEIGHT_PARTS = {
    "Dense": _KERNEL_AND_BIAS,
    "Conv1D": _KERNEL_AND_BIAS,
    "Conv2D": _KERNEL_AND_BIAS,
    "SimpleRNN": ("kernel", "recurrent_kernel", "bias"),
    "LSTM": ("kernel", "recurrent_kernel", "bias"),
    "GRU": ("kernel", "recurrent_kernel", "bias"),
    "BatchNormalization": ("gamma", "beta"),
    "LayerNormalization": ("gamma", "beta"),
}


def weight_parts(class_name: str) -> tuple[str, ...]:
    """A layer's trainable weights as Keras names them, in Keras' order (none for most)."""
    return _WEIGHT_PARTS.get(class_name, ())


def probes_activations(shape: LayerShape) -> bool:
    """Whether the capture probes the layer's activations: a recurrent layer, or one
    with an activation other than linear."""
    if shape.class_name in RECURRENT_CLASSES:
        return True
    activation = getattr(shape.layer.config, "activation", None)
    return activation is not None and activation is not KerasActivation.LINEAR
