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

What each layer's config takes is in core/experiment/layer_configs.py; how the
data flows through a list, in core/experiment/layer_shapes.py.

Example:
    >>> layers = LAYER_LIST.validate_python([{"class_name": "LSTM", "config": {"units": 8}}])
    >>> layers[0].config.units
    8
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import Discriminator, Field, GetJsonSchemaHandler, Tag, TypeAdapter, create_model
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from core.experiment.layer_configs import (
    ActivationConfig,
    BatchNormalizationConfig,
    Conv1DConfig,
    Conv2DConfig,
    DenseConfig,
    DropoutConfig,
    FlattenConfig,
    GlobalPoolConfig,
    GRUConfig,
    InputLayerConfig,
    LayerLimits,
    LayerNormalizationConfig,
    LSTMConfig,
    Pool1DConfig,
    Pool2DConfig,
    ReshapeConfig,
    SimpleRNNConfig,
    _Strict,
)


class ResidualConfig(_Strict):
    """gradwatch's own: `x + block(x)`, for a block whose output has its input's shape."""

    layers: list[LayerSpec] = Field(min_length=1, max_length=LayerLimits.LAYERS)
    name: str | None = Field(None, max_length=LayerLimits.NAME_LENGTH)


class _Layer(_Strict):
    """The wrapper Keras writes around a layer's config; `module`, `registered_name` and
    `build_config` are accepted and ignored."""

    module: str | None = Field(None, max_length=100)
    registered_name: str | None = Field(None, max_length=200)
    build_config: dict[str, Any] | None = None
    if TYPE_CHECKING:  # each layer class's own, as `_wrapper` makes it
        class_name: str
        config: Any


# Each layer class gradwatch builds, the config Keras writes for it, and whether Keras
# may leave that config out (every field has a default).
_CONFIGS: dict[str, tuple[type[_Strict], bool]] = {
    "Dense": (DenseConfig, False),
    "Conv1D": (Conv1DConfig, False),
    "Conv2D": (Conv2DConfig, False),
    "MaxPooling1D": (Pool1DConfig, True),
    "MaxPooling2D": (Pool2DConfig, True),
    "AveragePooling1D": (Pool1DConfig, True),
    "AveragePooling2D": (Pool2DConfig, True),
    "GlobalAveragePooling1D": (GlobalPoolConfig, True),
    "GlobalAveragePooling2D": (GlobalPoolConfig, True),
    "Flatten": (FlattenConfig, True),
    "Reshape": (ReshapeConfig, False),
    "SimpleRNN": (SimpleRNNConfig, False),
    "LSTM": (LSTMConfig, False),
    "GRU": (GRUConfig, False),
    "BatchNormalization": (BatchNormalizationConfig, True),
    "LayerNormalization": (LayerNormalizationConfig, True),
    "Dropout": (DropoutConfig, False),
    "Activation": (ActivationConfig, False),
    "InputLayer": (InputLayerConfig, True),
    "Residual": (ResidualConfig, False),
}


def _wrapper(class_name: str, config: type[_Strict], optional: bool) -> type[_Layer]:
    """The model of `{"class_name": class_name, "config": {...}}`, named `<class>Layer`
    (`LSTMLayer`) in the OpenAPI document."""
    default: Any = Field(default_factory=config) if optional else ...
    return create_model(
        f"{class_name}Layer",
        __base__=_Layer,
        __module__=__name__,
        class_name=(Literal[class_name], ...),  # type: ignore[arg-type]
        config=(config, default),
    )


_LAYER_CLASSES = tuple(_wrapper(name, *entry) for name, entry in _CONFIGS.items())
LAYER_CLASS_NAMES = tuple(_CONFIGS)
_BY_NAME = dict(zip(LAYER_CLASS_NAMES, _LAYER_CLASSES, strict=True))
RECURRENT_CLASSES = frozenset({"SimpleRNN", "LSTM", "GRU"})
CONV_CLASSES = frozenset({"Conv1D", "Conv2D"})


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


# Each layer class tagged as the discriminator names it.
_TAGGED = tuple(
    Annotated[cls, Tag(f"<{name}>")]
    for name, cls in zip(LAYER_CLASS_NAMES, _LAYER_CLASSES, strict=True)
)
if TYPE_CHECKING:
    LayerSpec = _Layer
else:
    LayerSpec = Annotated[
        Union[_TAGGED],  # noqa: UP007 - a union of classes made as the module loads
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


def make_layer(class_name: str, config: Mapping[str, Any]) -> LayerSpec:
    """A layer of a list, as if Keras had written `{"class_name": ..., "config": ...}`."""
    return _BY_NAME[class_name](class_name=class_name, config=config)
