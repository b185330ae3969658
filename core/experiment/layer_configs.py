"""What Keras writes inside one layer's config, validated: activations, the dtype policy,
initializers, and each layer class's settings, every size bounded by `LayerLimits`.

Keras (3.14-3.15) writes more than the essentials, and all of it is accepted at
its neutral value: `name`, `trainable: true`, the float32 dtype policy,
serialized initializers from the allowed set (`INITIALIZER_CLASSES`), null
regularizers and constraints, a null `seed`, `unroll: false`, `stateful: false`,
tuples as lists. Any other key, or another value of one of these, is refused.
core/experiment/layers.py wraps each config in the layer Keras writes around it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator


class LayerLimits:
    """Bounds on one layer's sizes; a network's total work is bounded in limits.Limits."""

    LAYERS = 64  # in the list, counting those inside residual blocks
    UNITS = 512  # dense and recurrent units
    FILTERS = 256
    KERNEL = 16  # a convolution's or pool's extent along an axis
    STRIDE = 16
    DILATION = 16
    NAME_LENGTH = 200


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Spelled out rather than built from Activation: a type checker sees only the members a
# class states (tests/core/test_spec.py keeps the two in step).
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


def printable_name(value: str | None) -> str | None:
    """A name as given (a layer's, an experiment's), refused unless printable text."""
    if value is not None and not value.isprintable():
        raise ValueError("name must be printable text")
    return value


class _LayerConfig(_Strict):
    """What every Keras layer config carries; accepted at its neutral value."""

    name: str | None = Field(None, max_length=LayerLimits.NAME_LENGTH)
    trainable: Literal[True] = True
    dtype: DTypePolicy | Literal["float32"] | None = None

    @field_validator("name")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        return printable_name(value)


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


def per_axis(value: int | list[int], rank: int) -> tuple[int, ...]:
    return (value,) * rank if isinstance(value, int) else tuple(value)


def _tuple_length(value: int | list[int] | None, rank: int, what: str) -> None:
    if isinstance(value, list) and len(value) != rank:
        raise ValueError(f"{what} takes {rank} value(s) or one integer, got {len(value)}")


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
        strided = any(s > 1 for s in per_axis(self.strides, self.RANK))
        if strided and any(d > 1 for d in per_axis(self.dilation_rate, self.RANK)):
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
        return per_axis(self.pool_size if self.strides is None else self.strides, self.RANK)


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


class _NormalizationConfig(_LayerConfig):
    """What batch and layer normalization share: the last axis, and a learned shift
    (beta) and scale (gamma) with neither regularizer nor constraint."""

    axis: Literal[-1] | list[Literal[-1]] = -1
    epsilon: float = Field(1e-3, gt=0.0, le=1.0)
    center: Literal[True] = True
    scale: Literal[True] = True
    beta_initializer: Initializer = "zeros"
    beta_regularizer: None = None
    beta_constraint: None = None
    gamma_initializer: Initializer = "ones"
    gamma_regularizer: None = None
    gamma_constraint: None = None


class BatchNormalizationConfig(_NormalizationConfig):
    momentum: float = Field(0.99, ge=0.0, lt=1.0)
    moving_mean_initializer: Literal["zeros"] | SerializedInitializer = "zeros"
    moving_variance_initializer: Literal["ones"] | SerializedInitializer = "ones"
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


class LayerNormalizationConfig(_NormalizationConfig):
    rms_scaling: Literal[False] = False


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
